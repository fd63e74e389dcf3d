package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

// setSSHConfig makes `ssh -G` read file instead of ~/.ssh/config for the
// rest of the test.
func setSSHConfig(t testing.TB, file string) {
	t.Helper()
	old := sshGConfigFile
	sshGConfigFile = file
	t.Cleanup(func() { sshGConfigFile = old })
}

// startAgent starts a real ssh-agent holding n new keys and points
// SSH_AUTH_SOCK at it.
func startAgent(t *testing.T, n int) {
	t.Helper()
	agent := testutil.Need(t, "ssh-agent")
	add := testutil.Need(t, "ssh-add")
	keygen := testutil.Need(t, "ssh-keygen")
	dir, err := os.MkdirTemp("/tmp", "bb-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "sock")
	cmd := exec.Command(agent, "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	t.Setenv("SSH_AUTH_SOCK", sock)
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		exec.Command("sleep", "0.05").Run()
	}
	for i := 0; i < n; i++ {
		key := filepath.Join(dir, "k"+string(rune('a'+i)))
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		if out, err := exec.Command(add, key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v\n%s", err, out)
		}
	}
}

// TestSSHConfigCases runs the real `ssh -G` over a fixture ssh_config for
// each case and checks the verdict.
func TestSSHConfigCases(t *testing.T) {
	testutil.Need(t, "ssh")
	tests := []struct {
		name     string
		config   string
		agent    int // keys in a real agent; -1: no agent
		identity string
		options  []string
		status   steps.Status
		words    []string
	}{
		{"plain", "Host *\n  User opc\n", -1, "", nil, steps.StatusOK, []string{"no connection sharing", "no proxy"}},
		{"ControlMaster auto", "Host vps\n  ControlMaster auto\n  ControlPath ~/.ssh/cm-%r@%h:%p\n  ControlPersist 10m\n", -1, "", nil,
			steps.StatusFail, []string{"ControlMaster auto", "ControlPersist 600", "--ssh-option ControlPath=none"}},
		{"ControlMaster yes", "Host *\n  ControlMaster yes\n  ControlPath /tmp/cm-%C\n", -1, "", nil,
			steps.StatusFail, []string{"ControlMaster true", "hang"}},
		{"ControlPath only", "Host vps\n  ControlPath /tmp/cm-%C\n", -1, "", nil,
			steps.StatusWarn, []string{"ControlPath /tmp/cm-", "join a master", "ControlPath=none"}},
		{"sharing turned off by --ssh-option", "Host vps\n  ControlMaster auto\n  ControlPath /tmp/cm-%C\n", -1, "", []string{"ControlPath=none"},
			steps.StatusOK, []string{"no connection sharing"}},
		{"ProxyJump", "Host vps\n  ProxyJump bastion.example.com\n", -1, "", nil,
			steps.StatusFail, []string{"ProxyJump bastion.example.com", "ProxyJump=none"}},
		{"ProxyCommand", "Host vps\n  ProxyCommand nc -X 5 -x localhost:1080 %h %p\n", -1, "", nil,
			steps.StatusFail, []string{"ProxyCommand nc", "ProxyCommand=none"}},
		{"agent with many keys, no -i", "", 6, "", nil,
			steps.StatusFail, []string{"holds 6 keys", "Too many authentication failures", "pass -i"}},
		{"agent with many keys and -i", "", 6, "/tmp/some-key", nil,
			steps.StatusOK, []string{"6 key(s), only the chosen key offered"}},
		{"agent with many keys, IdentitiesOnly", "Host vps\n  IdentitiesOnly yes\n", 6, "", nil,
			steps.StatusOK, []string{"only the chosen key offered"}},
		{"agent with few keys", "", 5, "", nil, steps.StatusOK, []string{"5 key(s), fewer than the installer's 6 tries"}},
		{"IdentityAgent none", "Host vps\n  IdentityAgent none\n", 7, "", nil, steps.StatusOK, []string{"no ssh agent"}},
		{"broken config", "Host vps\n  NoSuchKeyword yes\n", -1, "", nil, steps.StatusFail, []string{"cannot be read", "ssh -G vps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "ssh_config")
			if err := os.WriteFile(file, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			setSSHConfig(t, file)
			t.Setenv("SSH_AUTH_SOCK", "")
			if tt.agent >= 0 {
				startAgent(t, tt.agent)
			}
			cfg := steps.DefaultConfig()
			cfg.Host, cfg.Identity, cfg.SSHOptions = "vps", tt.identity, tt.options
			c := checkSSHConfig(cfg, readSSHConfig(context.Background(), cfg))
			if c.ID != IDSSHConfig {
				t.Errorf("id = %s", c.ID)
			}
			if c.Status != tt.status {
				t.Fatalf("status = %s, want %s: %s (fix: %s)", c.Status, tt.status, c.Summary, c.Fix)
			}
			text := c.Summary + " " + c.Fix
			for _, w := range tt.words {
				if !strings.Contains(text, w) {
					t.Errorf("does not say %q: %s", w, text)
				}
			}
			if c.Status != steps.StatusOK && c.Fix == "" {
				t.Errorf("%s without a fix", c.Status)
			}
		})
	}
}

func TestSSHConfigNoHost(t *testing.T) {
	cfg := steps.DefaultConfig()
	if c := checkSSHConfig(cfg, readSSHConfig(context.Background(), cfg)); c.Status != steps.StatusSkip {
		t.Errorf("no host: %s %s", c.Status, c.Summary)
	}
}
