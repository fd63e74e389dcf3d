package engine

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

// recordingArchiver keeps the options the engine gives the archive layer
// and answers with archive and err.
type recordingArchiver struct {
	backup  reinstall.BackupOptions
	restore reinstall.RestoreOptions
	archive reinstall.Archive
	err     error
}

func (r *recordingArchiver) Backup(_ context.Context, _ Conn, o reinstall.BackupOptions, _ func(reinstall.Progress)) (reinstall.Archive, error) {
	r.backup = o
	return r.archive, r.err
}

func (r *recordingArchiver) Restore(_ context.Context, _ Conn, _ reinstall.Archive, o reinstall.RestoreOptions, _ func(reinstall.Progress)) (reinstall.RestoreResult, error) {
	r.restore = o
	return reinstall.RestoreResult{}, r.err
}

type noReceipts struct{}

func (noReceipts) Read(steps.Target) (receipt.Receipt, error) {
	return receipt.Receipt{}, receipt.ErrNotFound
}
func (noReceipts) Write(receipt.Receipt) (string, error) { return "", errors.New("not kept") }
func (noReceipts) AddBackup(steps.Target, receipt.Backup) error {
	return nil
}

// TestArchiveOptionsReachTheArchiver: the backup gets the recipients, the
// flake's .sops.yaml, the plaintext choice and the identity, and says who
// can open the archive; the restore gets the identity, and its error says
// how to run it again with that identity.
func TestArchiveOptionsReachTheArchiver(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(kh)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flakeDir := t.TempDir()
	cfg := steps.Config{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, KnownHosts: kh, Flake: flakeDir + "#vps"}
	arch := &recordingArchiver{archive: reinstall.Archive{Path: "/b/a.tar.zst.age", Manifest: reinstall.Manifest{Encryption: reinstall.EncryptionAge, Recipients: []string{"age1op", "age1team"}}}}
	e := New(World{Dialer: SSHDialer{}, AgentSocket: "none", Archives: arch, Receipts: noReceipts{}, BackupDir: func() (string, error) { return t.TempDir(), nil }})
	o := ReinstallOptions{Recipients: []string{"age1op"}, Identity: "/keys/my key.txt"}
	_, notes, err := e.Backup(ctx, cfg, DialPolicy{}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := arch.backup
	if !slices.Equal(b.Recipients, o.Recipients) || b.Identity != o.Identity || b.Plaintext || b.SopsConfig != filepath.Join(flakeDir, ".sops.yaml") {
		t.Fatalf("backup options %+v", b)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "encrypted with age to age1op, age1team") {
		t.Fatalf("notes %q", notes)
	}
	arch.archive.Manifest = reinstall.Manifest{Encryption: reinstall.EncryptionNone}
	if _, notes, _ = e.Backup(ctx, cfg, DialPolicy{}, ReinstallOptions{Plaintext: true}, nil); !arch.backup.Plaintext || len(notes) != 1 || notes[0] != PlaintextWarning {
		t.Fatalf("plaintext: options %+v, notes %q", arch.backup, notes)
	}

	c, err := e.Connect(ctx, cfg, DialPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	arch.err = errors.New("tar --extract into /persistent exited with status 2 on the target")
	_, err = e.RestoreOver(ctx, c, cfg, arch.archive, o, nil)
	if arch.restore.Identity != o.Identity || arch.restore.AnotherTarget {
		t.Fatalf("restore options %+v", arch.restore)
	}
	if err == nil || !strings.Contains(err.Error(), "run again with --restore /b/a.tar.zst.age --backup-identity '/keys/my key.txt'") {
		t.Fatalf("restore error: %v", err)
	}
}
