package rehearsal

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// newTestBackend starts a fast rehearsal whose folder must be gone after
// the test.
func newTestBackend(t *testing.T) *Rehearsal { return newTestRehearsal(t, false) }

// newTestRehearsal is newTestBackend for an install (reinstall false: the
// new system has a key of its own) or a reinstall (it keeps the machine's).
func newTestRehearsal(t *testing.T, reinstall bool) *Rehearsal {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Speed: 1000, Exe: exe, Reinstall: reinstall})
	if err != nil {
		t.Fatal(err)
	}
	dir := b.Dir()
	t.Cleanup(func() {
		b.Close()
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s is left behind", dir)
		}
	})
	return b
}

// progressLog records the progress calls of a transfer.
type progressLog struct {
	mu sync.Mutex
	ps []reinstall.Progress
}

func (l *progressLog) add(p reinstall.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ps = append(l.ps, p)
}

// check asserts that the bytes never go back and end at the total.
func (l *progressLog) check(t *testing.T, total int64) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ps) < 2 {
		t.Fatalf("%d progress reports, want several", len(l.ps))
	}
	for i := 1; i < len(l.ps); i++ {
		if l.ps[i].Bytes < l.ps[i-1].Bytes {
			t.Errorf("progress went back: %d after %d", l.ps[i].Bytes, l.ps[i-1].Bytes)
		}
	}
	last := l.ps[len(l.ps)-1]
	if last.Bytes != total || last.Total != total || last.ETA != 0 {
		t.Errorf("last progress %+v, want %d of %d and no ETA", last, total, total)
	}
}

// TestReinstallBackend runs the rehearsal's reinstall steps: the drift
// says a reinstall is needed, the backup leaves a REHEARSAL file in the
// temporary folder, and the restore verifies it and writes the receipt.
func TestReinstallBackend(t *testing.T) {
	ctx := context.Background()
	b := newTestRehearsal(t, true)
	cfg := b.Config()

	e := b.Engine()
	d, err := e.Prepare(ctx, cfg, engine.DialPolicy{})
	if err != nil || d.NewHostKey.Status != engine.HostKeyNew {
		t.Fatalf("first connection: %v, %+v; want the new host key to compare", err, d.NewHostKey)
	}
	p := engine.DialPolicy{Approved: d.NewHostKey.Fingerprint}
	if d, err = e.Prepare(ctx, cfg, p); err != nil {
		t.Fatal(err)
	}
	// The real comparison of the demo flake with the simulated machine's
	// disks: the Oracle Linux partitions the wipe screen shows too.
	if d.Report.Verdict != reinstall.VerdictReinstall || len(d.Report.Changes) == 0 || !strings.Contains(d.Report.Summary(), "reinstall required") {
		t.Errorf("drift %+v, want a reinstall", d.Report)
	}
	if fp := b.srv.HostKeyFingerprint(); d.HostKeyFingerprint != fp || !strings.Contains(d.HostKey, "holds the machine's host key") {
		t.Errorf("host key step %q (%s), want the machine's key %s already in the tree", d.HostKey, d.HostKeyFingerprint, fp)
	}

	var bl progressLog
	o := engine.ReinstallOptions{Services: ReinstallServices}
	a, _, err := e.Backup(ctx, cfg, p, o, bl.add)
	if err != nil {
		t.Fatal(err)
	}
	bl.check(t, a.Manifest.Bytes)
	if a.Manifest.Bytes < 1<<30 || a.Manifest.Entries == 0 {
		t.Errorf("manifest %+v, want a few GiB of /persistent", a.Manifest)
	}
	for _, p := range []string{a.Path, a.ManifestPath} {
		if filepath.Dir(p) != b.Dir() {
			t.Errorf("%s is outside the temporary folder %s", p, b.Dir())
		}
	}
	body, err := os.ReadFile(a.Path)
	if err != nil || !strings.Contains(string(body), "REHEARSAL") {
		t.Errorf("the archive says %q (%v), want REHEARSAL", body, err)
	}
	opened, err := reinstall.OpenArchive(a.Path)
	if err != nil || opened.Manifest.SHA256 != a.Manifest.SHA256 {
		t.Errorf("OpenArchive: %+v, %v", opened.Manifest, err)
	}

	var rl progressLog
	res, err := e.Restore(ctx, cfg, a, o, rl.add)
	if err != nil {
		t.Fatal(err)
	}
	rl.check(t, a.Manifest.Bytes)
	if res.Result.Entries != a.Manifest.Entries || res.Result.Bytes != a.Manifest.Bytes {
		t.Errorf("restore verified %+v, want the manifest's %d entries, %d bytes", res.Result, a.Manifest.Entries, a.Manifest.Bytes)
	}
	if rec, err := os.ReadFile(res.Receipt); err != nil || filepath.Dir(res.Receipt) != b.Dir() || !strings.Contains(string(rec), `"restored": true`) {
		t.Errorf("receipt %s: %q, %v; want a receipt in the temporary folder that records the restore", res.Receipt, rec, err)
	}
}

// TestReinstallBackendRefuses covers what the rehearsal refuses, as the
// real reinstall does: a host key in the tree that is not the machine's,
// an archive of another host or a damaged one, and a cancelled backup.
func TestReinstallBackendRefuses(t *testing.T) {
	b := newTestRehearsal(t, true)
	cfg := b.Config()
	cfg.AcceptNewHostKey = true
	e := b.Engine()
	var p engine.DialPolicy
	var o engine.ReinstallOptions
	a, _, err := e.Backup(context.Background(), cfg, p, o, func(reinstall.Progress) {})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		run     func() error
		wantErr error  // matched with errors.Is when set
		wantMsg string // in the error otherwise
	}{
		{name: "other host key in the tree", run: func() error {
			other := t.TempDir()
			key := filepath.Join(other, "persistent", "etc", "ssh", "ssh_host_ed25519_key.pub")
			if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
				return err
			}
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			if err := os.WriteFile(key, []byte(secrets.AuthorizedLine(pub, "other")+"\n"), 0o600); err != nil {
				return err
			}
			c := cfg
			c.ExtraFiles = other
			_, err = e.Prepare(context.Background(), c, p)
			return err
		}, wantMsg: "is not the one"},
		{name: "archive of another host", run: func() error {
			c := cfg
			c.Host = "198.51.100.9"
			_, err := e.Restore(context.Background(), c, a, o, func(reinstall.Progress) {})
			return err
		}, wantErr: reinstall.ErrOtherHost},
		{name: "damaged archive", run: func() error {
			bad := a
			bad.Manifest.SHA256 = strings.Repeat("0", 64)
			_, err := e.Restore(context.Background(), cfg, bad, o, func(reinstall.Progress) {})
			return err
		}, wantErr: reinstall.ErrCorrupt},
		{name: "cancelled backup", run: func() error {
			_, _, err := e.Backup(cancelled, cfg, p, o, func(reinstall.Progress) {})
			return err
		}, wantErr: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("error %v, want %v", err, tc.wantErr)
			case tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg):
				t.Errorf("error %v, want %q", err, tc.wantMsg)
			}
		})
	}
}
