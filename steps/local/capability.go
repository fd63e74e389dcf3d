package local

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
)

// BinfmtDir is where Linux lists its binfmt_misc interpreters.
const BinfmtDir = "/proc/sys/fs/binfmt_misc"

// BuildFacts are what decide whether this machine builds a system,
// whatever --build-on says: its Nix system and extra-platforms (nix.conf),
// Nix's remote builders and the binfmt_misc interpreters the kernel has
// enabled. The local checks read them once; the wizard judges a changed
// build choice from them without reading anything again.
type BuildFacts struct {
	// System is the system Nix builds natively (nix.conf's system, else
	// the one bigbang was built for).
	System string
	// ExtraPlatforms is nix.conf's extra-platforms.
	ExtraPlatforms []string
	// Builders are Nix's remote builders.
	Builders []builder
	// Binfmt are the names of the enabled binfmt_misc entries, read from
	// BinfmtDir ("" when it was not read).
	Binfmt    []string
	BinfmtDir string
}

// ReadBuildFacts reads this machine's build facts: nix.conf, Nix's
// builders setting and the enabled binfmt_misc entries under binfmtDir
// ("" reads none).
func ReadBuildFacts(ctx context.Context, binfmtDir string) BuildFacts {
	p := localPlatforms(ctx)
	f := BuildFacts{System: p.system, ExtraPlatforms: p.extra, Builders: nixBuilders(ctx)}
	f.readBinfmt(binfmtDir)
	return f
}

func (f *BuildFacts) readBinfmt(dir string) {
	f.BinfmtDir = dir
	if dir == "" {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if n == "register" || n == "status" {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil && strings.HasPrefix(string(b), "enabled") {
			f.Binfmt = append(f.Binfmt, n)
		}
	}
}

func (f BuildFacts) platforms() platforms {
	return platforms{system: f.System, extra: f.ExtraPlatforms, builders: f.Builders}
}

// emulator is the enabled binfmt_misc entry that runs programs for the
// CPU of system (qemu-aarch64, aarch64-linux, …), or "".
func (f BuildFacts) emulator(system string) string {
	cpu, _, _ := strings.Cut(system, "-")
	if cpu == "" {
		return ""
	}
	for _, n := range f.Binfmt {
		if strings.Contains(n, cpu) {
			return n
		}
	}
	return ""
}

// CanBuild says whether this machine builds system, and why: natively,
// through a remote builder, or through emulation declared in nix.conf's
// extra-platforms (which is what Nix goes by; a binfmt_misc interpreter is
// named when one is registered). It does not depend on the build location
// chosen, so a choice changed after the preflight is judged on the same
// facts. An unknown system cannot be judged: false with no reason.
func (f BuildFacts) CanBuild(system string) (bool, string) {
	if system == "" {
		return false, ""
	}
	if system == f.System {
		return true, "this machine is " + system + " too"
	}
	if b, found := f.platforms().builderFor(system); found {
		return true, "through " + b.describe()
	}
	cpu, _, _ := strings.Cut(system, "-")
	emulator := f.emulator(system)
	extra := slices.Contains(f.ExtraPlatforms, system)
	switch {
	case extra && emulator != "":
		return true, "binfmt emulation (" + emulator + ") and extra-platforms = " + system + " in nix.conf"
	case extra:
		return true, "nix.conf lists " + system + " in extra-platforms"
	case emulator != "":
		return false, "binfmt emulation (" + emulator + ") is registered, but nix.conf lacks extra-platforms = " + system
	case f.BinfmtDir == "":
		return false, "nix.conf lacks extra-platforms = " + system + " and no remote builder builds it"
	}
	return false, "no binfmt emulation for " + cpu + " is registered (" + f.BinfmtDir + ")"
}

// BuildCheck is the local.build check for cfg's build location and RAM on
// these facts, for a flake whose system is system: the check the
// preflight makes, made again when the wizard's choice changes.
func BuildCheck(cfg steps.Config, system string, f BuildFacts) steps.Check {
	if system == "" {
		return checkBuild(cfg, nil, f.platforms())
	}
	return checkBuild(cfg, &flake.Config{System: system}, f.platforms())
}
