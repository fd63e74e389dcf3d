package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// binfmtFixture is a binfmt_misc folder with an enabled aarch64 entry and
// a disabled riscv64 one.
func binfmtFixture(t *testing.T) string {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"register":     "",
		"status":       "enabled\n",
		"qemu-aarch64": "enabled\ninterpreter /usr/bin/qemu-aarch64-static\n",
		"qemu-riscv64": "disabled\ninterpreter /usr/bin/qemu-riscv64-static\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCanBuild covers the RAM screen's "can this machine build it":
// natively, through a builder, through emulation declared in nix.conf, or
// not, and why; the binfmt entries come from a real folder.
func TestCanBuild(t *testing.T) {
	dir := binfmtFixture(t)
	facts := func(extra []string, builders []builder) BuildFacts {
		f := BuildFacts{System: "x86_64-linux", ExtraPlatforms: extra, Builders: builders}
		f.readBinfmt(dir)
		return f
	}
	tests := []struct {
		name, target string
		f            BuildFacts
		want         bool
		note         string
	}{
		{"native", "x86_64-linux", facts(nil, nil), true, "this machine is x86_64-linux too"},
		{"binfmt and extra-platforms", "aarch64-linux", facts([]string{"aarch64-linux"}, nil), true, "binfmt emulation (qemu-aarch64) and extra-platforms"},
		{"binfmt without extra-platforms", "aarch64-linux", facts(nil, nil), false, "nix.conf lacks extra-platforms = aarch64-linux"},
		{"a remote builder", "aarch64-linux", facts(nil, []builder{{URI: "ssh://build@big.example.com", Systems: []string{"aarch64-linux"}}}), true, "the remote builder ssh://build@big.example.com"},
		{"disabled entry", "riscv64-linux", facts(nil, nil), false, "no binfmt emulation for riscv64 is registered (" + dir + ")"},
		{"no binfmt folder", "aarch64-linux", BuildFacts{System: "aarch64-darwin"}, false, "nix.conf lacks extra-platforms = aarch64-linux and no remote builder"},
		{"unknown target", "", facts([]string{"aarch64-linux"}, nil), false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, note := tc.f.CanBuild(tc.target)
			if got != tc.want || !strings.Contains(note, tc.note) || (tc.note == "" && note != "") {
				t.Errorf("CanBuild(%q) = %v, %q; want %v and a note with %q", tc.target, got, note, tc.want, tc.note)
			}
		})
	}
}

// TestBuildCheckFollowsTheChoice: the local.build check made again from
// the same facts follows the build location: a local build this machine
// cannot make blocks, the remote one passes, and with emulation in
// nix.conf the local one passes too.
func TestBuildCheckFollowsTheChoice(t *testing.T) {
	dir := binfmtFixture(t)
	none := BuildFacts{System: "x86_64-linux"}
	none.readBinfmt(dir)
	emulated := none
	emulated.ExtraPlatforms = []string{"aarch64-linux"}
	cfg := func(on, ram string) steps.Config { c := steps.DefaultConfig(); c.BuildOn, c.RAM = on, ram; return c }
	tests := []struct {
		name   string
		cfg    steps.Config
		f      BuildFacts
		status steps.Status
		words  string
	}{
		{"local, cannot", cfg("local", ""), none, steps.StatusFail, "--build-on local, but this x86_64-linux machine cannot build aarch64-linux"},
		{"remote, cannot build here", cfg("remote", ""), none, steps.StatusOK, "built on the target"},
		{"local, emulated", cfg("local", ""), emulated, steps.StatusOK, "this x86_64-linux machine builds aarch64-linux"},
		{"remote with 1G, can build here", cfg("remote", "1G"), emulated, steps.StatusFail, "use --build-on local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := BuildCheck(tc.cfg, "aarch64-linux", tc.f)
			if c.ID != IDBuild || c.Status != tc.status || !strings.Contains(c.Summary+" "+c.Fix, tc.words) {
				t.Errorf("BuildCheck = %+v; want %s with %q", c, tc.status, tc.words)
			}
		})
	}
}

// TestInspectReadsBuildFacts: the local checks hand over the facts they
// read — nix.conf's extra-platforms and the binfmt entries — so the verdict
// does not depend on the --build-on of the run.
func TestInspectReadsBuildFacts(t *testing.T) {
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "nix.conf"), []byte("extra-platforms = aarch64-linux\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NIX_CONF_DIR", conf)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("NIX_CONFIG", "")
	dir := binfmtFixture(t)
	cfg := steps.DefaultConfig()
	cfg.Flake, cfg.BuildOn = t.TempDir()+"#none", "remote"
	r := Inspect(t.Context(), cfg, nil, dir)
	if len(r.Build.ExtraPlatforms) != 1 || r.Build.ExtraPlatforms[0] != "aarch64-linux" || len(r.Build.Binfmt) != 1 || r.Build.Binfmt[0] != "qemu-aarch64" {
		t.Fatalf("build facts %+v; want extra-platforms aarch64-linux and the qemu-aarch64 entry", r.Build)
	}
	if ok, note := r.Build.CanBuild("aarch64-linux"); !ok {
		t.Errorf("with --build-on remote the facts say this machine cannot build aarch64-linux: %s", note)
	}
}
