package rehearsal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/ui"
)

var _ ui.ReinstallBackend = (*Backend)(nil)

// The simulated /persistent of the VPS: a few GiB of state, streamed at a
// pace a link between an operator and a small VPS plausibly gives.
const (
	mib               = int64(1) << 20
	persistentBytes   = int64(3)*steps.GiB + 412*mib
	persistentEntries = 48_213
	archiveBytes      = int64(1)*steps.GiB + 733*mib // compressed
	backupRate        = 58 << 20                     // bytes per second at speed 1
	restoreRate       = 85 << 20
	// progressEvery is how often the simulated transfer reports, in real
	// time, so the bar moves smoothly at every speed.
	progressEvery = 100 * time.Millisecond
)

// ReinstallServices are the units the demo's restore stops and starts.
var ReinstallServices = []string{"postgresql.service", "caddy.service"}

// driftReport is the demo flake against the live disks of a machine
// installed with an older layout: the ESP and /nix grow, which only a
// fresh partitioning does.
func driftReport() reinstall.Report {
	return reinstall.Report{
		Verdict: reinstall.VerdictReinstall,
		Changes: []reinstall.Change{
			{Kind: reinstall.KindChanged, What: "/dev/sda partition ESP (/boot)", Live: "512M vfat", Flake: "1G vfat"},
			{Kind: reinstall.KindChanged, What: "/dev/sda partition nix (/nix)", Live: "80G btrfs", Flake: "100G btrfs"},
		},
		Unchanged: []string{"/dev/sda: GPT", "/dev/sda partition root (/): btrfs, rest of the disk", "/dev/sda partition persistent (/persistent): btrfs"},
	}
}

// Prepare plays the host key step and the drift: the key in the
// extra-files tree is the simulated machine's own (it is checked for
// real), and the live layout differs from the flake's.
func (b *Backend) Prepare(ctx context.Context, cfg steps.Config) (ui.Drift, error) {
	b.pause(ctx, 1200*time.Millisecond)
	if err := ctx.Err(); err != nil {
		return ui.Drift{}, err
	}
	rel := filepath.Join("persistent", "etc", "ssh", "ssh_host_ed25519_key.pub")
	have, err := os.ReadFile(filepath.Join(cfg.ExtraFiles, rel))
	if err != nil {
		return ui.Drift{}, fmt.Errorf("rehearsal: reading the host key of the extra-files tree: %w; run the demo again", err)
	}
	if !bytes.Equal(bytes.TrimSpace(have), []byte(b.srv.HostKeyLine())) {
		return ui.Drift{}, fmt.Errorf("rehearsal: %s is not the simulated machine's key; run the demo again", rel)
	}
	fp := b.srv.HostKeyFingerprint()
	return ui.Drift{
		Report:             driftReport(),
		HostKey:            "REHEARSAL: the machine's host key " + fp + " is already in " + filepath.Join(filepath.Base(filepath.Dir(cfg.ExtraFiles)), filepath.Base(cfg.ExtraFiles), rel) + ": the new system keeps it.",
		HostKeyFingerprint: fp,
	}, nil
}

// transfer reports a simulated stream of total bytes at rate (bytes per
// second at speed 1) until it is done or ctx ends.
func (b *Backend) transfer(ctx context.Context, total int64, rate float64, progress func(reinstall.Progress)) (time.Duration, error) {
	start := time.Now()
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		el := time.Since(start)
		// The simulated clock runs Speed times faster than the real one.
		sim := time.Duration(float64(el) * b.opts.Speed)
		done := min(int64(sim.Seconds()*rate), total)
		p := reinstall.Progress{Bytes: done, Total: total, Archive: done * archiveBytes / persistentBytes, Rate: rate, Elapsed: sim}
		if done < total {
			p.ETA = time.Duration(float64(total-done) / rate * float64(time.Second))
		}
		progress(p)
		if done >= total {
			return sim, nil
		}
		select {
		case <-ctx.Done():
			return sim, ctx.Err()
		case <-t.C:
		}
	}
}

// Backup simulates the backup of /persistent and writes a small stand-in
// archive, which says REHEARSAL, with its manifest into the temporary
// folder.
func (b *Backend) Backup(ctx context.Context, cfg steps.Config, progress func(reinstall.Progress)) (reinstall.Archive, error) {
	took, err := b.transfer(ctx, persistentBytes, backupRate, progress)
	if err != nil {
		return reinstall.Archive{}, fmt.Errorf("rehearsal: backup stopped: %w", err)
	}
	now := time.Now().UTC()
	name := "persistent-" + cfg.Host + "-" + now.Format("20060102-150405") + ".tar.zst"
	path := filepath.Join(b.dir, name)
	body := []byte("REHEARSAL: a stand-in for a backup of " + cfg.Host + ":" + reinstall.DefaultSource + "; nothing real was read.\n")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return reinstall.Archive{}, fmt.Errorf("rehearsal: writing the stand-in archive: %w; check that $TMPDIR is writable", err)
	}
	sum := sha256.Sum256(body)
	m := reinstall.Manifest{
		Version: 1, Host: cfg.Host, HostKeyFingerprint: b.srv.HostKeyFingerprint(), Created: now,
		Source: reinstall.DefaultSource, Archive: name, Compression: "zstd",
		TarOptions: []string{"--numeric-owner", "--xattrs", "--acls"},
		Entries:    persistentEntries, Bytes: persistentBytes, DiskUsage: persistentBytes + 96*mib,
		ArchiveBytes: archiveBytes, SHA256: hex.EncodeToString(sum[:]), Seconds: took.Seconds(),
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return reinstall.Archive{}, err
	}
	mp := path + reinstall.ManifestSuffix
	if err := os.WriteFile(mp, append(mj, '\n'), 0o600); err != nil {
		return reinstall.Archive{}, fmt.Errorf("rehearsal: writing the manifest: %w; check that $TMPDIR is writable", err)
	}
	return reinstall.Archive{Path: path, ManifestPath: mp, Manifest: m}, nil
}

// Restore simulates the restore of the archive into the new system, then
// its comparison with the archive, and writes a receipt into the
// temporary folder.
func (b *Backend) Restore(ctx context.Context, cfg steps.Config, a reinstall.Archive, progress func(reinstall.Progress)) (ui.Restored, error) {
	if err := reinstall.CheckHost(a.Manifest, cfg.Host, b.srv.HostKeyFingerprint()); err != nil {
		return ui.Restored{}, err
	}
	if err := reinstall.VerifyChecksum(a); err != nil {
		return ui.Restored{}, err
	}
	if _, err := b.transfer(ctx, a.Manifest.Bytes, restoreRate, progress); err != nil {
		return ui.Restored{}, fmt.Errorf("rehearsal: restore stopped: %w", err)
	}
	// The comparison of the tree with the archive.
	b.pause(ctx, 2*time.Second)
	if err := ctx.Err(); err != nil {
		return ui.Restored{}, fmt.Errorf("rehearsal: restore stopped: %w", err)
	}
	res := reinstall.RestoreResult{Entries: a.Manifest.Entries, Bytes: a.Manifest.Bytes}
	receipt := filepath.Join(b.dir, "receipt-"+cfg.Host+".json")
	rec := map[string]any{
		"rehearsal": "REHEARSAL: nothing real was installed or restored",
		"host":      cfg.Host,
		"host_key":  b.srv.HostKeyFingerprint(),
		"restore":   map[string]any{"archive": a.Path, "sha256": a.Manifest.SHA256, "entries": res.Entries, "bytes": res.Bytes, "services": ReinstallServices},
	}
	rj, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return ui.Restored{}, err
	}
	out := ui.Restored{Result: res, Receipt: receipt}
	if err := os.WriteFile(receipt, append(rj, '\n'), 0o600); err != nil {
		out.Receipt = ""
		out.Notes = append(out.Notes, "REHEARSAL: the receipt could not be written: "+err.Error())
	}
	out.Notes = append(out.Notes, "REHEARSAL: the backup, the restore and the receipt were simulated in the demo's temporary folder, which is removed when it ends.")
	return out, nil
}
