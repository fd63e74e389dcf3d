package secrets

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// TestAgeRecipientVectors uses the published conversions of
// Mic92/ssh-to-age's README: `ssh-keyscan eve.thalheim.io eva.thalheim.io |
// ssh-to-age`, whose ed25519 host keys are in its test-assets/keyscan.txt.
func TestAgeRecipientVectors(t *testing.T) {
	tests := []struct{ host, line, want string }{
		{"eve", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF/KPU3Z5LSjbBI6hrq25wCcseq2UpqSzUFZRr+ux6LM",
			"age1hjm3aujg9e79f5yth8a2cejzdjg5n9vnu96l05p70uvfpeltnpms7yy3pp"},
		{"eva", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIL2vjdqpppuCn7yPdF2muINriAG7zBWrsELKpPWkhn5",
			"age1v8zjc47jmlqwefyu66s0d4ke98qr4vnuj3cpvs4z9npfdw833dxqwjrhzv"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			pub, _, err := ParseAuthorized(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			got, err := AgeRecipient(pub)
			if err != nil || got != tt.want {
				t.Fatalf("AgeRecipient = %q, %v; want %q", got, err, tt.want)
			}
			if _, err := age.ParseX25519Recipient(got); err != nil {
				t.Fatalf("age rejects the recipient: %v", err)
			}
		})
	}
}

// TestAgeRoundTripWithCLI encrypts with the real age CLI to the derived
// recipient and decrypts with the identity derived from the private key.
func TestAgeRoundTripWithCLI(t *testing.T) {
	ageBin := testutil.Need(t, "age")
	k := generate(t, filepath.Join(t.TempDir(), "ssh_host_ed25519_key"))
	cmd := exec.Command(ageBin, "--encrypt", "-r", k.Recipient)
	cmd.Stdin = strings.NewReader("sealed for the host")
	ct, err := cmd.Output()
	if err != nil {
		t.Fatalf("age --encrypt: %v", err)
	}
	id, err := ageIdentity(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	if id.Recipient().String() != k.Recipient {
		t.Fatalf("identity's recipient %s != %s", id.Recipient(), k.Recipient)
	}
	r, err := age.Decrypt(bytes.NewReader(ct), id)
	if err != nil {
		t.Fatalf("decrypt with the derived identity: %v", err)
	}
	pt, _ := io.ReadAll(r)
	if string(pt) != "sealed for the host" {
		t.Fatalf("plaintext = %q", pt)
	}
}

func generate(t *testing.T, path string) *HostKey {
	t.Helper()
	k, err := Generate(path, "root@vps-arm")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateMatchesOpenSSH(t *testing.T) {
	keygen := testutil.Need(t, "ssh-keygen")
	path := filepath.Join(t.TempDir(), "with space", "persistent", "etc", "ssh", "ssh_host_ed25519_key")
	k := generate(t, path)
	for p, want := range map[string]os.FileMode{path: 0o600, path + ".pub": 0o644} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s mode = %v, %v; want %04o", p, st.Mode().Perm(), err, want)
		}
	}
	// ssh-keygen reads the private key and derives the same public key.
	out, err := exec.Command(keygen, "-y", "-f", path).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	pub, _ := os.ReadFile(path + ".pub")
	if !SameKey(string(out), string(pub)) {
		t.Fatalf("ssh-keygen -y = %q, .pub = %q", out, pub)
	}
	lf, err := exec.Command(keygen, "-lf", path+".pub").Output()
	if err != nil || !strings.Contains(string(lf), k.Fingerprint+" root@vps-arm") {
		t.Fatalf("ssh-keygen -lf = %q, want %s", lf, k.Fingerprint)
	}
	if _, err := Generate(path, "again"); err == nil {
		t.Fatal("Generate overwrote an existing key")
	}
	if k.PubErr != nil || !k.ModeOK() {
		t.Fatalf("fresh key: PubErr=%v ModeOK=%v", k.PubErr, k.ModeOK())
	}
}

func TestInspectOpenSSHKey(t *testing.T) {
	keygen := testutil.Need(t, "ssh-keygen")
	dir := t.TempDir()
	path := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "made by ssh-keygen", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	k, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := exec.Command(keygen, "-lf", path).Output()
	if !strings.Contains(string(lf), k.Fingerprint) || k.Comment != "made by ssh-keygen" || k.PubErr != nil {
		t.Fatalf("fingerprint %s comment %q pubErr %v; ssh-keygen says %s", k.Fingerprint, k.Comment, k.PubErr, lf)
	}
}

func TestInspectBadKeys(t *testing.T) {
	keygen := testutil.Need(t, "ssh-keygen")
	dir := t.TempDir()
	mk := func(name string, args ...string) string {
		p := filepath.Join(dir, name)
		if out, err := exec.Command(keygen, append([]string{"-q", "-C", "", "-f", p}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		return p
	}
	encrypted := mk("encrypted", "-t", "ed25519", "-N", "secret")
	rsa := mk("rsa", "-t", "rsa", "-b", "2048", "-N", "")
	good := mk("good", "-t", "ed25519", "-N", "")
	other := mk("other", "-t", "ed25519", "-N", "")
	corrupt := filepath.Join(dir, "corrupt")
	data, _ := os.ReadFile(good)
	os.WriteFile(corrupt, bytes.Replace(data, []byte("AAAA"), []byte("BBBB"), 3), 0o600)
	mismatch := filepath.Join(dir, "mismatch")
	os.WriteFile(mismatch, data, 0o600)
	otherPub, _ := os.ReadFile(other + ".pub")
	os.WriteFile(mismatch+".pub", otherPub, 0o644)
	nopub := filepath.Join(dir, "nopub")
	os.WriteFile(nopub, data, 0o600)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, data, 0o644)
	goodPub, _ := os.ReadFile(good + ".pub")
	os.WriteFile(open+".pub", goodPub, 0o644)

	tests := []struct {
		name    string
		path    string
		wantErr error
		check   func(k *HostKey) bool
	}{
		{"missing", filepath.Join(dir, "none"), ErrMissing, nil},
		{"encrypted", encrypted, ErrEncrypted, nil},
		{"rsa", rsa, ErrKeyType, nil},
		{"corrupt", corrupt, ErrNotKey, nil},
		{"the .pub given as the key", good + ".pub", ErrNotKey, nil},
		{"pub mismatch", mismatch, nil, func(k *HostKey) bool { return errors.Is(k.PubErr, ErrPubMismatch) }},
		{"pub missing", nopub, nil, func(k *HostKey) bool { return errors.Is(k.PubErr, ErrPubMissing) }},
		{"mode 0644", open, nil, func(k *HostKey) bool {
			return !k.ModeOK() && k.ModeFix() == "chmod 600 "+open && FixMode(open) == nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Inspect(tt.path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Inspect error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(k) {
				t.Fatalf("Inspect = %+v, %v", k, err)
			}
		})
	}
	if st, _ := os.Stat(open); st.Mode().Perm() != 0o600 {
		t.Fatalf("FixMode left %04o", st.Mode().Perm())
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pem, err := MarshalPrivate(priv, "c")
	if err != nil {
		t.Fatal(err)
	}
	got, comment, err := ParsePrivate(pem)
	if err != nil || !got.Equal(priv) || comment != "c" {
		t.Fatalf("round trip: %v %q", err, comment)
	}
}

func TestKeyPath(t *testing.T) {
	tests := []struct {
		paths      []string
		local, tgt string
	}{
		{nil, "keys/persistent/etc/ssh/ssh_host_ed25519_key", DefaultKeyPath},
		{[]string{"/etc/ssh/ssh_host_ed25519_key"}, "keys/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key"},
	}
	for _, tt := range tests {
		l, g := KeyPath("keys", tt.paths)
		if l != tt.local || g != tt.tgt {
			t.Errorf("KeyPath(%v) = %s, %s; want %s, %s", tt.paths, l, g, tt.local, tt.tgt)
		}
	}
}
