package local

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// nixConfDir writes a fixture nix.conf (the system's, then extra) and
// points NIX_CONF_DIR at it, so that the real nix reports its settings.
func nixConfDir(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	base, _ := os.ReadFile("/etc/nix/nix.conf")
	if err := os.WriteFile(filepath.Join(dir, "nix.conf"), append(base, []byte("\n"+extra)...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NIX_CONF_DIR", dir)
	t.Setenv("NIX_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	return dir
}

func TestNixBuildersFromRealNix(t *testing.T) {
	newWorld(t, worldOpts{}) // needs nix; gives the fixture layout
	machines := filepath.Join(t.TempDir(), "machines")
	os.WriteFile(machines, []byte("# a comment\nssh://build@big.example.com x86_64-linux,aarch64-linux - 8\n"), 0o644)
	tests := []struct {
		name, conf string
		want       []builder
	}{
		{"linux-builder", "builders = ssh-ng://builder@linux-builder aarch64-linux /etc/nix/builder_ed25519 4 - - - -\n",
			[]builder{{URI: "ssh-ng://builder@linux-builder", Systems: []string{"aarch64-linux"}}}},
		{"machines file", "builders = @" + machines + "\n",
			[]builder{{URI: "ssh://build@big.example.com", Systems: []string{"x86_64-linux", "aarch64-linux"}}}},
		{"two, default systems", "builders = ssh://a - ; ssh://b riscv64-linux\n",
			[]builder{{URI: "ssh://a"}, {URI: "ssh://b", Systems: []string{"riscv64-linux"}}}},
		{"none", "builders =\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nixConfDir(t, tt.conf)
			if got := nixBuilders(context.Background()); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("builders = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildThroughBuilder(t *testing.T) {
	tests := []struct {
		name, conf string
		status     steps.Status
		words      []string
	}{
		{"nix-darwin's linux-builder", "builders = ssh-ng://builder@linux-builder aarch64-linux /etc/nix/builder_ed25519 4 - - - -\n",
			steps.StatusOK, []string{"nix-darwin's linux-builder", "not contacted"}},
		{"a builder for another system", "builders = ssh://build@x86.example.com x86_64-linux\n",
			steps.StatusFail, []string{"cannot build aarch64-linux", "linux-builder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOpts{hostInRule: true, operatorAuth: true})
			nixConfDir(t, tt.conf)
			w.cfg.BuildOn = "local"
			checks, _, _ := Run(context.Background(), w.cfg)
			c := byID(checks)[IDBuild]
			if c.Status != tt.status {
				t.Fatalf("%s = %s, want %s: %s (fix: %s)", IDBuild, c.Status, tt.status, c.Summary, c.Fix)
			}
			for _, word := range tt.words {
				if !strings.Contains(c.Summary+" "+c.Fix, word) {
					t.Errorf("does not say %q: %s / %s", word, c.Summary, c.Fix)
				}
			}
		})
	}
}
