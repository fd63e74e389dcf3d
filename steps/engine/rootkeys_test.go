package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// TestRootKeyOptions: what remote.root_keys is told of the run: the -i is
// the accepted key when both name one file (by another path too), and a run
// whose phases leave kexec out on a machine not in the installer skips it.
func TestRootKeyOptions(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(key, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                   string
		identity, accepted     string
		phases                 string
		installer              bool
		wantAccepted, wantSkip bool
	}{
		{"-i is the accepted key", key, key, "", false, true, false},
		{"-i names it through a link", filepath.Join(dir, "link"), key, "", false, true, false},
		{"-i is another key", filepath.Join(dir, "other"), key, "", false, false, false},
		{"no -i", "", key, "", false, false, false},
		{"an agent key logged in", key, "", "", false, false, false},
		{"phases without kexec", key, key, "disko,install,reboot", false, true, true},
		{"installer: nothing to skip", key, key, "", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := steps.DefaultConfig()
			cfg.Host, cfg.Identity, cfg.Phases = "203.0.113.7", tt.identity, tt.phases
			o := rootKeyOptions(remote.CheckOptions{AuthKeyFile: tt.accepted}, cfg, tt.installer)
			if o.IdentityAccepted != tt.wantAccepted || o.SkipKexec != tt.wantSkip || o.Identity != tt.identity || o.Host != cfg.Host {
				t.Fatalf("options = %+v, want accepted %v, skip %v", o, tt.wantAccepted, tt.wantSkip)
			}
		})
	}
}
