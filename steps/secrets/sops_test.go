package secrets

import (
	"context"
	"errors"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// NeedSops finds the sops CLI, also where `go install` puts it, which the
// test setup uses (go install github.com/getsops/sops/v3/cmd/sops@v3.13.3).
func needSops(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("sops"); err != nil {
		gobin := filepath.Join(build.Default.GOPATH, "bin")
		if _, err := os.Stat(filepath.Join(gobin, "sops")); err == nil {
			t.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+gobin)
		}
	}
	return testutil.Need(t, "sops")
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sopsEncrypt encrypts file in place with the real sops, to the rule that
// .sops.yaml in dir gives it.
func sopsEncrypt(t *testing.T, sops, dir, rel string) {
	t.Helper()
	cmd := exec.Command(sops, "--encrypt", "--in-place", rel)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SOPS_AGE_KEY_FILE=/nonexistent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sops --encrypt %s: %v\n%s", rel, err, out)
	}
}

func TestSopsProof(t *testing.T) {
	sops := needSops(t)
	dir := t.TempDir()
	host := generate(t, filepath.Join(dir, "secrets-init", "keys", "persistent", "etc", "ssh", "ssh_host_ed25519_key"))
	admin := generate(t, filepath.Join(t.TempDir(), "admin_key"))
	later := generate(t, filepath.Join(t.TempDir(), "later_key"))

	write(t, filepath.Join(dir, ".sops.yaml"), `keys:
  - &admin `+admin.Recipient+`
  - &host `+host.Recipient+`
creation_rules:
  - path_regex: secrets/secrets\.yaml$
    key_groups:
      - age:
          - *admin
          - *host
  - path_regex: secrets/[^/]+\.json$
    age: `+admin.Recipient+`, `+host.Recipient+`
  - path_regex: secrets/old\.yaml$
    age: `+admin.Recipient+`
`)
	write(t, filepath.Join(dir, "secrets", "secrets.yaml"), "users:\n  admin:\n    password: hash\n")
	write(t, filepath.Join(dir, "secrets", "api.json"), `{"token": "abc"}`)
	write(t, filepath.Join(dir, "secrets", "old.yaml"), "a: b\n")
	write(t, filepath.Join(dir, "secrets", "plain.yaml"), "not: encrypted\n")
	for _, f := range []string{"secrets/secrets.yaml", "secrets/api.json", "secrets/old.yaml"} {
		sopsEncrypt(t, sops, dir, f)
	}
	// .sops.yaml now lists the later key for old.yaml, but sops updatekeys
	// was not run: the file is still encrypted to the admin only.
	cfgText, _ := os.ReadFile(filepath.Join(dir, ".sops.yaml"))
	write(t, filepath.Join(dir, ".sops.yaml"), strings.Replace(string(cfgText),
		"old\\.yaml$\n    age: "+admin.Recipient, "old\\.yaml$\n    age: "+admin.Recipient+","+later.Recipient, 1))

	cfg, err := LoadSopsConfig(filepath.Join(dir, ".sops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files := cfg.FindSecrets(dir, filepath.Join(dir, "secrets-init"))
	var rels []string
	for _, f := range files {
		r, _ := filepath.Rel(dir, f)
		rels = append(rels, r)
	}
	if strings.Join(rels, " ") != "secrets/api.json secrets/old.yaml secrets/secrets.yaml" {
		t.Fatalf("FindSecrets = %v", rels)
	}
	tests := []struct {
		file      string
		key       *HostKey
		inRule    bool
		wantProof error
	}{
		{"secrets/secrets.yaml", host, true, nil},
		{"secrets/api.json", host, true, nil},
		{"secrets/old.yaml", host, false, ErrNotReencrypted},
		{"secrets/old.yaml", later, true, ErrNotReencrypted},
		{"secrets/secrets.yaml", admin, true, nil},
		{"secrets/plain.yaml", host, false, ErrNotSops},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.key.Recipient[:10], func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			rule, err := cfg.RuleFor(path)
			if tt.file == "secrets/plain.yaml" {
				if !errors.Is(err, ErrNoRule) {
					t.Fatalf("RuleFor(plain) = %v, want ErrNoRule", err)
				}
			} else if err != nil || rule.Has(tt.key.Recipient) != tt.inRule {
				t.Fatalf("rule has recipient = %v (err %v), want %v", rule != nil && rule.Has(tt.key.Recipient), err, tt.inRule)
			}
			if err := ProveDecrypt(tt.key, path); !errors.Is(err, tt.wantProof) || (tt.wantProof == nil && err != nil) {
				t.Fatalf("ProveDecrypt = %v, want %v", err, tt.wantProof)
			}
		})
	}
}

func TestSopsProofWrongIdentity(t *testing.T) {
	sops := needSops(t)
	dir := t.TempDir()
	host := generate(t, filepath.Join(dir, "k"))
	write(t, filepath.Join(dir, ".sops.yaml"), "creation_rules:\n  - age: "+host.Recipient+"\n")
	write(t, filepath.Join(dir, "s.yaml"), "a: b\n")
	sopsEncrypt(t, sops, dir, "s.yaml")
	// Another key that claims the same recipient cannot open the stanza.
	impostor := generate(t, filepath.Join(dir, "impostor"))
	impostor.Recipient = host.Recipient
	if err := ProveDecrypt(impostor, filepath.Join(dir, "s.yaml")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("ProveDecrypt with the wrong key = %v, want ErrDecrypt", err)
	}
}

func TestLoadSopsConfigBad(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]string{
		"not yaml":      "creation_rules: [\n  - {path_regex: x\n",
		"bad regex":     "creation_rules:\n  - path_regex: '('\n    age: age1x\n",
		"age not words": "creation_rules:\n  - age: {a: b}\n",
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			write(t, p, text)
			if _, err := LoadSopsConfig(p); !errors.Is(err, ErrSopsConfig) {
				t.Fatalf("LoadSopsConfig = %v, want ErrSopsConfig", err)
			}
		})
	}
}

func TestGitFileState(t *testing.T) {
	git := testutil.Need(t, "git")
	repo := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(git, append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q")
	write(t, filepath.Join(repo, ".gitignore"), "secrets-init/keys/\n")
	ignored := filepath.Join(repo, "secrets-init", "keys", "persistent", "etc", "ssh", "ssh_host_ed25519_key")
	write(t, ignored, "x")
	tracked := filepath.Join(repo, "keys with space", "ssh_host_ed25519_key")
	write(t, tracked, "x")
	run("add", "-A")
	plain := filepath.Join(repo, "loose", "ssh_host_ed25519_key")
	write(t, plain, "x")
	notYet := filepath.Join(repo, "secrets-init", "keys", "etc", "ssh", "ssh_host_ed25519_key")
	tests := []struct {
		name string
		path string
		want GitState
	}{
		{"ignored", ignored, GitState{Ignored: true}},
		{"tracked, path with spaces", tracked, GitState{Tracked: true}},
		{"neither", plain, GitState{}},
		{"not generated yet", notYet, GitState{Ignored: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GitFileState(context.Background(), tt.path)
			if err != nil || got != tt.want {
				t.Fatalf("GitFileState = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := GitFileState(context.Background(), filepath.Join(t.TempDir(), "k")); !errors.Is(err, ErrNotGit) {
		t.Fatalf("outside a repository: %v, want ErrNotGit", err)
	}
	if !strings.Contains(UntrackFix(tracked), "git rm --cached '"+tracked+"'") {
		t.Fatalf("UntrackFix = %s", UntrackFix(tracked))
	}
}
