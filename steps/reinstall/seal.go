package reinstall

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// SealDir returns the folder where Backup keeps the seal of each archive:
// $XDG_STATE_HOME/bigbang/seals, or ~/.local/state/bigbang/seals. A seal is
// the manifest as Backup wrote it, named by the archive's SHA-256: it binds
// the manifest to the archive, so that a manifest edited afterwards (another
// source directory, another host) is refused. It lies apart from the
// backups, which may be copied around.
func SealDir() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("seals: no home folder (%w): set XDG_STATE_HOME", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "bigbang", "seals"), nil
}

func sealDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return SealDir()
}

// sealPath is the seal of the archive with the given SHA-256, which must be
// one: the value comes from a manifest and becomes a file name.
func sealPath(dir, sum string) (string, error) {
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 || strings.ToLower(sum) != sum {
		return "", fmt.Errorf("%w: its sha256 %q is not a SHA-256", ErrManifestEdited, sum)
	}
	return filepath.Join(dir, sum+".json"), nil
}

// writeSeal keeps the manifest of a new archive in the seal folder (0700,
// the seal 0600).
func writeSeal(dir string, m Manifest) error {
	dir, err := sealDir(dir)
	if err != nil {
		return err
	}
	p, err := sealPath(dir, m.SHA256)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sealing the manifest: %w", err)
	}
	if err := writeJSON(p, m); err != nil {
		return fmt.Errorf("sealing the manifest: %w", err)
	}
	return nil
}

// CheckSeal compares an archive's manifest with the seal Backup kept for
// it, found by the archive's SHA-256 (check that with VerifyChecksum
// first). A manifest that differs is refused with ErrManifestEdited naming
// the fields; an archive without a seal here (taken on another machine, or
// the seal folder lost) with ErrUnsealed.
func CheckSeal(dir string, a Archive) error {
	dir, err := sealDir(dir)
	if err != nil {
		return err
	}
	p, err := sealPath(dir, a.Manifest.SHA256)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s has no seal in %s, so its manifest cannot be trusted: restore it from the machine and account that took the backup (the seal folder is part of bigbang's state)", ErrUnsealed, a.Path, dir)
	}
	if err != nil {
		return fmt.Errorf("reading the seal of %s: %w", a.Path, err)
	}
	var sealed Manifest
	if err := json.Unmarshal(b, &sealed); err != nil {
		return fmt.Errorf("the seal %s is not valid JSON: %w: it was damaged; restore the archive by hand", p, err)
	}
	if diff := manifestDiff(sealed, a.Manifest); len(diff) > 0 {
		return fmt.Errorf("%w: %s was changed after the backup (%s): nothing was restored; put back the manifest Backup wrote (its copy is %s)",
			ErrManifestEdited, a.ManifestPath, strings.Join(diff, "; "), p)
	}
	return nil
}

// manifestDiff names the fields in which got differs from want, with both
// values.
func manifestDiff(want, got Manifest) []string {
	var out []string
	wv, gv := reflect.ValueOf(want), reflect.ValueOf(got)
	t := wv.Type()
	for i := range t.NumField() {
		w, g := wv.Field(i).Interface(), gv.Field(i).Interface()
		if reflect.DeepEqual(w, g) {
			continue
		}
		if wt, ok := w.(time.Time); ok && wt.Equal(g.(time.Time)) {
			continue
		}
		name := t.Field(i).Tag.Get("json")
		out = append(out, fmt.Sprintf("%s is %v, the backup wrote %v", name, g, w))
	}
	return out
}
