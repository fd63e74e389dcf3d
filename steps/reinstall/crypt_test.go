package reinstall

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// newIdentity writes a fresh age identity as age-keygen does (0600) and
// returns the file and its recipient.
func newIdentity(t *testing.T) (string, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "keys.txt")
	body := "# created: by the test\n# public key: " + id.Recipient().String() + "\n" + id.String() + "\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, id.Recipient().String()
}

// noDefaultIdentities points sops's default places at empty folders.
func noDefaultIdentities(t *testing.T) {
	t.Setenv("SOPS_AGE_KEY_FILE", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
}

func TestParseRecipients(t *testing.T) {
	_, r1 := newIdentity(t)
	_, r2 := newIdentity(t)
	keyFile, _ := newIdentity(t)
	file := filepath.Join(t.TempDir(), "recipients.txt")
	if err := os.WriteFile(file, []byte("# the team\n"+r2+"\n\n"+r1+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ParseRecipients([]string{r1, file})
	if err != nil || !slices.Equal(got, []string{r1, r2}) {
		t.Fatalf("ParseRecipients = %v, %v; want %v once each", got, err, []string{r1, r2})
	}
	secret := strings.TrimSpace(strings.Split(readAll(t, keyFile), "\n")[2])
	for _, tt := range []struct {
		name, arg string
		want      []string
	}{
		{"a mangled recipient", r1[:len(r1)-3] + "xyz", []string{"not an age recipient", "age-keygen -y"}},
		{"no such file", filepath.Join(t.TempDir(), "nope"), []string{"neither an age recipient", "nope"}},
		{"a private key on the command line", secret, []string{"private key, not a recipient"}},
		{"a key file given as recipients", keyFile, []string{"line 3 is a private key"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRecipients([]string{tt.arg})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Errorf("the error shows key material: %q", err)
			}
		})
	}
}

func TestSopsRecipients(t *testing.T) {
	_, r1 := newIdentity(t)
	_, r2 := newIdentity(t)
	_, r3 := newIdentity(t)
	dir := t.TempDir()
	p := filepath.Join(dir, ".sops.yaml")
	yaml := "keys:\n  - &op " + r1 + "\ncreation_rules:\n" +
		"  - path_regex: secrets/[^/]+\\.yaml$\n    age: >-\n      " + r1 + ",\n      " + r2 + "\n" +
		"  - path_regex: other/.*\n    key_groups:\n      - age:\n          - *op\n          - " + r3 + "\n"
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := SopsRecipients(p)
	if err != nil || !slices.Equal(got, []string{r1, r2, r3}) {
		t.Fatalf("SopsRecipients = %v, %v; want %v", got, err, []string{r1, r2, r3})
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("creation_rules:\n  - age: age1notakey\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := SopsRecipients(bad); err == nil || !strings.Contains(err.Error(), "rule 1") || !strings.Contains(err.Error(), "age1notakey") {
		t.Fatalf("a bad recipient in .sops.yaml: %v", err)
	}
}

func TestLoadIdentities(t *testing.T) {
	noDefaultIdentities(t)
	keyFile, r := newIdentity(t)
	ids, err := LoadIdentities(keyFile)
	if err != nil || !ids.Opens([]string{"age1other", r}) || ids.Opens([]string{"age1other"}) {
		t.Fatalf("LoadIdentities(%s) = %+v, %v", keyFile, ids, err)
	}
	// The defaults: SOPS_AGE_KEY_FILE, then the config folder.
	if ids, err := LoadIdentities(""); err != nil || len(ids.Files) != 0 {
		t.Fatalf("no default file: %+v, %v", ids, err)
	}
	cfg := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "sops", "age")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "keys.txt"), []byte(readAll(t, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	if ids, err := LoadIdentities(""); err != nil || !ids.Opens([]string{r}) {
		t.Fatalf("the sops config folder: %+v, %v", ids, err)
	}
	other, r2 := newIdentity(t)
	t.Setenv("SOPS_AGE_KEY_FILE", other)
	if ids, err := LoadIdentities(""); err != nil || !ids.Opens([]string{r2}) || !ids.Opens([]string{r}) || ids.Files[0] != other {
		t.Fatalf("SOPS_AGE_KEY_FILE: %+v, %v", ids, err)
	}

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := strings.TrimSpace(strings.Split(readAll(t, keyFile), "\n")[2])
	for _, tt := range []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"passphrase-protected", write("enc", AgeMagic+"\n-> scrypt abc 18\n"), "itself encrypted"},
		{"not a key", write("junk", "# comment\nhello "+secret+"\n"), "line 2 is not an age secret key"},
		{"a damaged key", write("bad", secret[:len(secret)-4]+"QQQQ\n"), "line 1 is not a valid age secret key"},
		{"empty", write("empty", "# nothing\n"), "holds no age secret key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadIdentities(tt.file)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:30]) {
				t.Errorf("the error shows key material: %q", err)
			}
		})
	}
}

// TestEncryptedRoundTrip backs up into an age archive and restores it: the
// file on disk is age ciphertext, the manifest records the recipients and
// both hashes, and the restore needs the identity.
func TestEncryptedRoundTrip(t *testing.T) {
	testutil.Need(t, "tar")
	testutil.Need(t, "zstd")
	noDefaultIdentities(t)
	base := t.TempDir()
	src, dst, dir := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "backups")
	seals := filepath.Join(base, "seals")
	makeTree(t, src)
	want, _ := treeHash(t, src)
	keyFile, r := newIdentity(t)
	_, other := newIdentity(t)
	opts := BackupOptions{Host: "vps", Source: src, Dir: dir, SealDir: seals, Recipients: []string{r, other}, Identity: keyFile}

	rr := &localRemote{}
	a, err := Backup(context.Background(), rr, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := a.Manifest
	if !m.Encrypted() || !slices.Equal(m.Recipients, []string{r, other}) || m.PlaintextSHA256 == "" || m.PlaintextSHA256 == m.SHA256 || !strings.HasSuffix(a.Path, ".tar.zst.age") {
		t.Fatalf("manifest %+v, path %s", m, a.Path)
	}
	body := readAll(t, a.Path)
	if !strings.HasPrefix(body, AgeMagic+"\n") || int64(len(body)) != m.ArchiveBytes {
		t.Fatalf("the archive is not age ciphertext of %d bytes: %q…", m.ArchiveBytes, body[:min(len(body), 40)])
	}
	if bytes.Contains([]byte(body), []byte("odd owner")) {
		t.Fatal("a file name of the tree is in the archive in the clear")
	}
	if fi, err := os.Stat(a.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive mode: %v %v", fi, err)
	}
	if err := VerifyChecksum(a); err != nil {
		t.Fatal(err)
	}

	// Without the identity: refused before anything runs on the target.
	before := len(rr.commands())
	_, err = Restore(context.Background(), rr, a, RestoreOptions{Host: "vps", Target: dst, AnotherTarget: true, SealDir: seals}, nil)
	if !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), r) || !strings.Contains(err.Error(), IdentityFlag) {
		t.Fatalf("restore without the identity: %v", err)
	}
	if n := len(rr.commands()); n != before {
		t.Fatalf("%d commands ran on the target: %v", n-before, rr.commands()[before:])
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restore directory was made: %v", err)
	}
	// Another identity is no better.
	stranger, _ := newIdentity(t)
	if err := VerifyArchive(a, seals, "", stranger); !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), stranger) {
		t.Fatalf("another identity: %v", err)
	}

	if _, err := Restore(context.Background(), rr, a, RestoreOptions{Host: "vps", Target: dst, AnotherTarget: true, SealDir: seals, Identity: keyFile}, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := treeHash(t, dst); got != want {
		t.Fatal("the restored tree differs")
	}
	// The tar stream reached the target decrypted.
	for _, c := range rr.commands() {
		if strings.Contains(c, "age") {
			t.Fatalf("a remote command deals with age: %s", c)
		}
	}
}

// TestEncryptedArchiveDamaged flips a byte of the ciphertext and reseals
// it as if the manifest had been written for it: age's authentication
// refuses it before anything is sent.
func TestEncryptedArchiveDamaged(t *testing.T) {
	testutil.Need(t, "tar")
	noDefaultIdentities(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	seals := filepath.Join(base, "seals")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "db"), bytes.Repeat([]byte("rows "), 50000), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile, r := newIdentity(t)
	a, err := Backup(context.Background(), &localRemote{}, BackupOptions{Host: "vps", Source: src, Dir: filepath.Join(base, "b"), SealDir: seals, Recipients: []string{r}, Identity: keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(readAll(t, a.Path))
	b[len(b)-20] ^= 1
	if err := os.WriteFile(a.Path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	a.Manifest.SHA256 = sha256Hex(b)
	if err := writeJSON(a.ManifestPath, a.Manifest); err != nil {
		t.Fatal(err)
	}
	if err := writeSeal(seals, a.Manifest); err != nil {
		t.Fatal(err)
	}
	rr := &localRemote{}
	if _, err := Restore(context.Background(), rr, a, RestoreOptions{Host: "vps", SealDir: seals, Identity: keyFile}, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a damaged ciphertext: %v", err)
	}
	if len(rr.commands()) != 0 {
		t.Fatalf("commands ran on the target: %v", rr.commands())
	}
}

// TestBackupEncryptionRefusals: no recipient, or no identity among them,
// refuses the backup before anything runs on the target.
func TestBackupEncryptionRefusals(t *testing.T) {
	noDefaultIdentities(t)
	src := t.TempDir()
	keyFile, r := newIdentity(t)
	_, other := newIdentity(t)
	sops := filepath.Join(t.TempDir(), ".sops.yaml")
	if err := os.WriteFile(sops, []byte("creation_rules:\n  - age: "+other+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), ".sops.yaml")
	if err := os.WriteFile(empty, []byte("creation_rules:\n  - pgp: ABC\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts BackupOptions
		is   error
		want []string
	}{
		{"nothing at all", BackupOptions{}, ErrNoRecipient, []string{"the flake has no .sops.yaml", "--backup-recipient", "--plaintext-backup"}},
		{".sops.yaml without age", BackupOptions{SopsConfig: empty}, ErrNoRecipient, []string{"no age recipient in " + empty}},
		{"no identity for .sops.yaml's recipients", BackupOptions{SopsConfig: sops}, ErrNoIdentity, []string{other, sops, IdentityFlag, "nothing was backed up"}},
		{"the identity is not a recipient", BackupOptions{Recipients: []string{other}, Identity: keyFile}, ErrNoIdentity, []string{other, keyFile}},
		{"a bad recipient", BackupOptions{Recipients: []string{"age1xyz"}, Identity: keyFile}, ErrBadRecipient, []string{"age1xyz"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rr := &localRemote{}
			o := tt.opts
			o.Host, o.Source, o.Dir = "vps", src, filepath.Join(t.TempDir(), "b")
			_, err := Backup(context.Background(), rr, o, nil)
			if !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if len(rr.commands()) != 0 {
				t.Errorf("commands ran on the target: %v", rr.commands())
			}
			if _, err := os.Stat(o.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the backup folder was made: %v", err)
			}
		})
	}
	// The recipients of .sops.yaml, with the identity: a backup.
	if _, err := Backup(context.Background(), &localRemote{}, BackupOptions{Host: "vps", Source: src, Dir: t.TempDir(), SopsConfig: sops, Recipients: []string{r}, Identity: keyFile, SealDir: t.TempDir()}, nil); err != nil {
		t.Fatalf("--backup-recipient over .sops.yaml: %v", err)
	}
}

func readAll(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestArchiveOpensWithAgeTool: the archive is a plain age file, as the age
// tool reads it: an identity from age-keygen opens it with `age -d`, and
// what comes out is the tar stream of the tree.
func TestArchiveOpensWithAgeTool(t *testing.T) {
	for _, tool := range []string{"age", "age-keygen", "tar", "zstd"} {
		testutil.Need(t, tool)
	}
	noDefaultIdentities(t)
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	if out, err := exec.Command("age-keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("age-keygen: %v\n%s", err, out)
	}
	pub, err := exec.Command("age-keygen", "-y", keyFile).Output()
	if err != nil {
		t.Fatal(err)
	}
	recipients := filepath.Join(t.TempDir(), "recipients.txt")
	if err := os.WriteFile(recipients, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "persistent")
	if err := os.MkdirAll(filepath.Join(src, "var/lib/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "var/lib/app/db"), []byte("rows"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Backup(context.Background(), &localRemote{}, BackupOptions{Host: "vps", Source: src, Dir: t.TempDir(), Recipients: []string{recipients}, Identity: keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Manifest.Recipients, []string{strings.TrimSpace(string(pub))}) {
		t.Fatalf("recipients %v, want the one of %s", a.Manifest.Recipients, recipients)
	}
	plain, err := exec.Command("age", "-d", "-i", keyFile, a.Path).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	if got := sha256Hex(plain); got != a.Manifest.PlaintextSHA256 {
		t.Fatalf("age -d yields SHA-256 %s, the manifest says %s", got, a.Manifest.PlaintextSHA256)
	}
	list := exec.Command("tar", "--list", "--use-compress-program=zstd", "--file=-")
	list.Stdin = bytes.NewReader(plain)
	out, err := list.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "./var/lib/app/db") {
		t.Fatalf("tar --list of the decrypted archive: %v\n%s", err, out)
	}
}
