package local

import (
	"context"
	"encoding/json"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// world is a flake repository shaped like the seed's: the fixture flake,
// the host key in secrets-init/keys (ignored by git), .sops.yaml and a
// secrets file made by the real sops, and the operator's key.
type world struct {
	t        testing.TB
	dir      string
	cfg      steps.Config
	hostKey  *secrets.HostKey
	operator string // private key path
	sops     string
}

type worldOpts struct {
	noGit        bool
	noHostKey    bool
	trackKey     bool
	hostInRule   bool // the host key's recipient is in .sops.yaml when encrypting
	listAfter    bool // added to .sops.yaml after encrypting (updatekeys not run)
	sopsYAML     string
	untracked    string
	configName   string
	operatorAuth bool // operator.pub is the operator's key (else a stranger's)
}

func needSops(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("sops"); err != nil {
		gobin := filepath.Join(build.Default.GOPATH, "bin")
		if _, err := os.Stat(filepath.Join(gobin, "sops")); err == nil {
			t.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+gobin)
		}
	}
	return testutil.Need(t, "sops")
}

func sh(t testing.TB, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func newWorld(t testing.TB, o worldOpts) *world {
	t.Helper()
	testutil.Need(t, "nix")
	testutil.Need(t, "git")
	keygen := testutil.Need(t, "ssh-keygen")
	w := &world{t: t, dir: t.TempDir(), sops: needSops(t)}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	if err := os.CopyFS(w.dir, os.DirFS(filepath.Join("..", "..", "testdata", "flakes", "seed"))); err != nil {
		t.Fatal(err)
	}
	w.operator = filepath.Join(t.TempDir(), "id ed25519") // a space in the path
	sh(t, w.dir, keygen, "-q", "-t", "ed25519", "-N", "", "-C", "operator", "-f", w.operator)
	authorized := w.operator + ".pub"
	if !o.operatorAuth {
		stranger := filepath.Join(t.TempDir(), "stranger")
		sh(t, w.dir, keygen, "-q", "-t", "ed25519", "-N", "", "-f", stranger)
		authorized = stranger + ".pub"
	}
	data, _ := os.ReadFile(authorized)
	os.WriteFile(filepath.Join(w.dir, "operator.pub"), data, 0o644)

	extra := filepath.Join(w.dir, "secrets-init", "keys")
	os.MkdirAll(extra, 0o755)
	keyPath := filepath.Join(extra, "persistent", "etc", "ssh", "ssh_host_ed25519_key")
	var err error
	if w.hostKey, err = secrets.Generate(keyPath, "root@vps-arm"); err != nil {
		t.Fatal(err)
	}
	admin, err := secrets.Generate(filepath.Join(t.TempDir(), "admin"), "admin")
	if err != nil {
		t.Fatal(err)
	}
	recips := admin.Recipient
	if o.hostInRule {
		recips += "," + w.hostKey.Recipient
	}
	writeSopsYAML := func(r string) {
		os.WriteFile(filepath.Join(w.dir, ".sops.yaml"), []byte("creation_rules:\n  - path_regex: secrets/[^/]+\\.yaml$\n    age: "+r+"\n"), 0o644)
	}
	writeSopsYAML(recips)
	os.WriteFile(filepath.Join(w.dir, "secrets", "secrets.yaml"), []byte("users:\n  admin:\n    password: hash\n"), 0o644)
	cmd := exec.Command(w.sops, "--encrypt", "--in-place", "secrets/secrets.yaml")
	cmd.Dir = w.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sops: %v\n%s", err, out)
	}
	if o.listAfter {
		writeSopsYAML(recips + "," + w.hostKey.Recipient)
	}
	if o.sopsYAML != "" {
		os.WriteFile(filepath.Join(w.dir, ".sops.yaml"), []byte(o.sopsYAML), 0o644)
	}
	if o.noHostKey {
		os.Remove(keyPath)
		os.Remove(keyPath + ".pub")
	}
	if !o.noGit {
		os.WriteFile(filepath.Join(w.dir, ".gitignore"), []byte("secrets-init/keys/\n"), 0o644)
		sh(t, w.dir, "git", "init", "-q")
		sh(t, w.dir, "git", "add", "-A")
		if o.trackKey {
			sh(t, w.dir, "git", "add", "-f", keyPath)
		}
	}
	if o.untracked != "" {
		os.WriteFile(filepath.Join(w.dir, o.untracked), []byte("{ }\n"), 0o644)
	}
	name := o.configName
	if name == "" {
		name = "vps-arm"
	}
	// ssh -G reads a fixture configuration (empty), not the user's.
	setSSHConfig(t, os.DevNull)
	w.cfg = steps.DefaultConfig()
	w.cfg.Flake = w.dir + "#" + name
	w.cfg.ExtraFiles = extra
	w.cfg.Identity = w.operator
	return w
}

func byID(checks []steps.Check) map[string]steps.Check {
	m := map[string]steps.Check{}
	for _, c := range checks {
		m[c.ID] = c
	}
	return m
}

func TestRunSeed(t *testing.T) {
	w := newWorld(t, worldOpts{hostInRule: true, operatorAuth: true})
	w.cfg.Host = "203.0.113.7"
	checks, exp, summary := Run(context.Background(), w.cfg)
	got := byID(checks)
	ids := []string{IDNix, IDFlake, IDGit, IDBuild, IDSSHKey, IDSSHConfig, IDHostKey, IDSecretsTrack, IDSopsRecipient, IDSopsDecrypt, IDLockout}
	if !reflect.DeepEqual(ids, IDs) {
		t.Errorf("IDs = %v, want %v", IDs, ids)
	}
	for i, c := range checks {
		if i < len(ids) && c.ID != ids[i] {
			t.Errorf("check %d is %s, want %s", i, c.ID, ids[i])
		}
	}
	if len(checks) != len(ids) {
		t.Fatalf("got %d checks, want %d: %+v", len(checks), len(ids), checks)
	}
	for _, id := range ids {
		c, present := got[id]
		if !present {
			t.Errorf("check %s missing", id)
			continue
		}
		if id == IDNix || id == IDBuild {
			// Nix 2.8 here is too old, and an x86_64 machine cannot
			// build aarch64: both warn, neither blocks.
			if c.Blocking() {
				t.Errorf("%s blocks: %+v", id, c)
			}
			continue
		}
		if c.Status != steps.StatusOK {
			t.Errorf("%s = %s: %s (fix: %s)", id, c.Status, c.Summary, c.Fix)
		}
	}
	if exp.System != "aarch64-linux" || len(exp.Disks) != 1 || exp.EFI == nil || !*exp.EFI {
		t.Errorf("expect = %+v", exp)
	}
	js, _ := json.Marshal(summary)
	want := `{"system":"aarch64-linux","disks":[{"device":"/dev/sda","min_size_bytes":86438330880}],"efi":true}`
	if string(js) != want {
		t.Errorf("flake summary = %s, want %s", js, want)
	}
	if !strings.Contains(got[IDHostKey].Summary, w.hostKey.Recipient) || !strings.Contains(got[IDHostKey].Summary, w.hostKey.Fingerprint) {
		t.Errorf("hostkey summary lacks the fingerprint and recipient: %s", got[IDHostKey].Summary)
	}
}

func TestRunProblems(t *testing.T) {
	tests := []struct {
		name   string
		opts   worldOpts
		mutate func(w *world)
		id     string
		status steps.Status
		words  []string
	}{
		{"lockout: root has no key", worldOpts{hostInRule: true, operatorAuth: true, configName: "lockout"}, nil,
			IDLockout, steps.StatusFail, []string{"locked out", "users.users.root.openssh.authorizedKeys.keys"}},
		{"lockout: a stranger's key", worldOpts{hostInRule: true}, nil,
			IDLockout, steps.StatusFail, []string{"locked out"}},
		{"lockout: sshd off", worldOpts{hostInRule: true, operatorAuth: true, configName: "no-sshd"}, nil,
			IDLockout, steps.StatusFail, []string{"services.openssh.enable"}},
		{"wheel user on port 2222", worldOpts{operatorAuth: true, configName: "grub-bios"}, nil,
			IDLockout, steps.StatusOK, []string{"admin", "2222"}},
		{"no sops: skip and say so", worldOpts{operatorAuth: true, configName: "no-disko"}, nil,
			IDSopsDecrypt, steps.StatusSkip, []string{"does not use sops-nix"}},
		{"host key missing", worldOpts{hostInRule: true, operatorAuth: true, noHostKey: true}, nil,
			IDHostKey, steps.StatusFail, []string{"bigbang keys"}},
		{"host key tracked", worldOpts{hostInRule: true, operatorAuth: true, trackKey: true}, nil,
			IDSecretsTrack, steps.StatusFail, []string{"git rm --cached", "rotate"}},
		{"not a recipient", worldOpts{operatorAuth: true}, nil,
			IDSopsRecipient, steps.StatusFail, []string{"secrets.yaml", "sops updatekeys"}},
		{"not a recipient: cannot decrypt", worldOpts{operatorAuth: true}, nil,
			IDSopsDecrypt, steps.StatusFail, []string{"not encrypted to the host key"}},
		{"listed but updatekeys not run", worldOpts{operatorAuth: true, listAfter: true}, nil,
			IDSopsDecrypt, steps.StatusFail, []string{"updatekeys was not run", "sops updatekeys"}},
		{".sops.yaml not YAML", worldOpts{operatorAuth: true, hostInRule: true, sopsYAML: "creation_rules: [ {\n"}, nil,
			IDSopsRecipient, steps.StatusFail, []string{".sops.yaml"}},
		{"untracked file", worldOpts{hostInRule: true, operatorAuth: true, untracked: "hardware.nix"}, nil,
			IDGit, steps.StatusWarn, []string{"hardware.nix", "git add"}},
		{"not a git folder", worldOpts{hostInRule: true, operatorAuth: true, noGit: true}, nil,
			IDGit, steps.StatusOK, []string{"not in a git repository"}},
		{"evaluation error", worldOpts{hostInRule: true, operatorAuth: true, configName: "broken"}, nil,
			IDFlake, steps.StatusFail, []string{"error:"}},
		{"configuration missing", worldOpts{hostInRule: true, operatorAuth: true, configName: "vps-amd"}, nil,
			IDFlake, steps.StatusFail, []string{"vps-arm", "too-big"}},
		{"build on local impossible", worldOpts{hostInRule: true, operatorAuth: true}, func(w *world) { w.cfg.BuildOn = "local" },
			IDBuild, steps.StatusFail, []string{"cannot build aarch64-linux", "--build-on remote"}},
		{"too little RAM to build remotely", worldOpts{hostInRule: true, operatorAuth: true}, func(w *world) { w.cfg.RAM = "1G" },
			IDBuild, steps.StatusFail, []string{"too little"}},
		{"key mode 0644", worldOpts{hostInRule: true, operatorAuth: true}, func(w *world) { os.Chmod(w.hostKey.Path, 0o644) },
			IDHostKey, steps.StatusFail, []string{"chmod 600"}},
		{".pub mismatch", worldOpts{hostInRule: true, operatorAuth: true}, func(w *world) {
			data, _ := os.ReadFile(w.operator + ".pub")
			os.WriteFile(w.hostKey.Path+".pub", data, 0o644)
		}, IDHostKey, steps.StatusFail, []string{".pub"}},
		{"corrupt host key", worldOpts{hostInRule: true, operatorAuth: true}, func(w *world) {
			os.WriteFile(w.hostKey.Path, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
		}, IDHostKey, steps.StatusFail, []string{"not usable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.opts)
			if tt.mutate != nil {
				tt.mutate(w)
			}
			checks, _, _ := Run(context.Background(), w.cfg)
			c := byID(checks)[tt.id]
			if c.Status != tt.status {
				t.Fatalf("%s = %s, want %s: %s (fix: %s)", tt.id, c.Status, tt.status, c.Summary, c.Fix)
			}
			text := c.Summary + " " + c.Fix
			for _, word := range tt.words {
				if !strings.Contains(text, word) {
					t.Errorf("%s does not say %q: %s", tt.id, word, text)
				}
			}
			if c.Status == steps.StatusFail && c.Fix == "" {
				t.Errorf("%s fails without a fix", tt.id)
			}
		})
	}
}

func TestRunReadsOnly(t *testing.T) {
	w := newWorld(t, worldOpts{hostInRule: true, operatorAuth: true, noHostKey: true})
	before := snapshot(t, w.dir)
	Run(context.Background(), w.cfg)
	if after := snapshot(t, w.dir); after != before {
		t.Fatalf("Run changed the flake folder:\nbefore %s\nafter  %s", before, after)
	}
}

func snapshot(t testing.TB, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !strings.Contains(p, "/.git/") {
			b.WriteString(p + " " + info.Mode().String() + "\n")
		}
		return nil
	})
	return b.String()
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"2.8.0": false, "2.16": true, "2.15.9": false, "2.24.10": true, "3.0": true} {
		if versionAtLeast(v, MinNix) != want {
			t.Errorf("versionAtLeast(%s) = %v", v, !want)
		}
	}
}
