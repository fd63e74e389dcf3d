// Package local holds the preflight checks that run on the operator's
// machine: nix, the flake, git, build capability, the operator's key, the
// host key and its sops proof, and the lockout check. They cost one nix
// eval (run in the background while the rest is looked at) and nothing else
// slow, and they only read.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
)

// The check IDs of the contract.
const (
	IDNix           = "local.nix"
	IDFlake         = "local.flake"
	IDGit           = "local.git"
	IDBuild         = "local.build"
	IDSSHKey        = "local.ssh_key"
	IDHostKey       = "local.hostkey"
	IDSecretsTrack  = "local.secrets_tracked"
	IDSopsRecipient = "local.sops_recipient"
	IDSopsDecrypt   = "local.sops_decrypt"
	IDLockout       = "local.lockout"
)

// IDs lists every local check ID in the order Run returns them.
var IDs = []string{IDNix, IDFlake, IDGit, IDBuild, IDSSHKey, IDSSHConfig, IDHostKey, IDSecretsTrack, IDSopsRecipient, IDSopsDecrypt, IDLockout}

// MinNix is the oldest Nix nixos-anywhere supports.
var MinNix = [3]int{2, 16, 0}

// FlakeSummary is the flake's part of `bigbang check --output json`.
type FlakeSummary struct {
	System string           `json:"system"`
	Disks  []steps.DiskNeed `json:"disks"`
	EFI    *bool            `json:"efi"`
}

// Run runs every local check. It evaluates the flake itself; RunWith takes
// an evaluation already started (the wizard starts it at launch).
func Run(ctx context.Context, cfg steps.Config) (checks []steps.Check, exp steps.TargetExpect, flakeSummary any) {
	return RunWith(ctx, cfg, nil)
}

// RunWith is Run with an evaluation of cfg.Flake that may already be
// running; nil starts one.
func RunWith(ctx context.Context, cfg steps.Config, pending *flake.Pending) (checks []steps.Check, exp steps.TargetExpect, flakeSummary any) {
	r := Inspect(ctx, cfg, pending, "")
	return r.Checks, r.Expect, r.FlakeSummary
}

// Result is what the local checks found: the checks, what the flake
// expects of the target, the flake's part of check's JSON, and the facts
// that decide whether this machine builds the system.
type Result struct {
	Checks       []steps.Check
	Expect       steps.TargetExpect
	FlakeSummary any
	Build        BuildFacts
}

// Inspect is RunWith returning the build facts too, with the binfmt_misc
// entries read from binfmtDir ("" reads none).
func Inspect(ctx context.Context, cfg steps.Config, pending *flake.Pending, binfmtDir string) Result {
	var (
		checks       []steps.Check
		exp          steps.TargetExpect
		flakeSummary any
	)
	if pending == nil {
		pending = flake.Start(ctx, cfg.Flake)
	}
	// Everything else is quick and runs while nix evaluates.
	var (
		wg      sync.WaitGroup
		nixVer  string
		nixErr  error
		platf   platforms
		gitInfo gitFacts
		opKeys  operatorKeys
		sshConf sshConfigFacts
		build   []builder
	)
	flakePath, _, _ := steps.SplitFlake(cfg.Flake)
	dir := flake.LocalDir(flakePath)
	var keyGit *gitAnswer
	defaultKey, _ := HostKeyPath(cfg, nil)
	wg.Add(5)
	go func() { defer wg.Done(); keyGit = askGit(ctx, defaultKey) }()
	go func() { defer wg.Done(); sshConf = readSSHConfig(ctx, cfg) }()
	go func() { defer wg.Done(); build = nixBuilders(ctx) }()
	platf = localPlatforms(ctx)
	go func() { defer wg.Done(); gitInfo = readGit(ctx, dir, cfg.ExtraFiles) }()
	go func() { defer wg.Done(); opKeys = readOperatorKeys(ctx, cfg.Identity) }()
	wg.Wait()

	info, ferr := pending.Wait(ctx)
	// The evaluation reports nix's version; only when it did not run is
	// nix asked on its own.
	var cm *flake.ConfigMissingError
	switch {
	case ferr == nil && info.NixVersion != "":
		nixVer = info.NixVersion
	case errors.As(ferr, &cm) && cm.NixVersion != "":
		nixVer = cm.NixVersion
	default:
		nixVer, nixErr = nixVersion(ctx)
	}
	checks = append(checks, checkNix(nixVer, nixErr))
	checks = append(checks, checkFlake(cfg, info, ferr))
	checks = append(checks, checkGit(dir, gitInfo))
	var conf *flake.Config
	if ferr == nil {
		conf = &info.Config
		exp = conf.Expect()
		flakeSummary = FlakeSummary{System: exp.System, Disks: exp.Disks, EFI: exp.EFI}
		if exp.Disks == nil {
			flakeSummary = FlakeSummary{System: exp.System, Disks: []steps.DiskNeed{}, EFI: exp.EFI}
		}
	}
	platf.builders = build
	checks = append(checks, checkBuild(cfg, conf, platf))
	checks = append(checks, checkSSHKey(cfg, opKeys))
	checks = append(checks, checkSSHConfig(cfg, sshConf))
	checks = append(checks, secretChecks(ctx, cfg, dir, conf, keyGit)...)
	checks = append(checks, checkLockout(conf, opKeys, dir))
	bf := BuildFacts{System: platf.system, ExtraPlatforms: platf.extra, Builders: build}
	bf.readBinfmt(binfmtDir)
	return Result{Checks: checks, Expect: exp, FlakeSummary: flakeSummary, Build: bf}
}

func ok(id, summary string) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusOK, Summary: summary}
}
func skip(id, summary string) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusSkip, Summary: summary}
}
func warn(id, summary, fix string) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusWarn, Summary: summary, Fix: fix}
}
func fail(id, summary, fix string) steps.Check {
	return steps.Check{ID: id, Status: steps.StatusFail, Summary: summary, Fix: fix}
}

var nixVersionRE = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

func nixVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "nix", "--version").Output()
	if err != nil {
		return "", err
	}
	m := nixVersionRE.FindString(string(out))
	if m == "" {
		return "", fmt.Errorf("cannot read the version in %q", strings.TrimSpace(string(out)))
	}
	return m, nil
}

// versionAtLeast compares dotted versions numerically.
func versionAtLeast(v string, min [3]int) bool {
	m := nixVersionRE.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	for i := 0; i < 3; i++ {
		n, _ := strconv.Atoi(m[i+1])
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}

func checkNix(ver string, err error) steps.Check {
	if err != nil {
		if _, lerr := exec.LookPath("nix"); lerr != nil {
			return fail(IDNix, "nix is not installed", "install Nix (https://nixos.org/download), then run bigbang again")
		}
		return fail(IDNix, "nix does not run: "+err.Error(), "check your Nix installation with nix --version")
	}
	min := fmt.Sprintf("%d.%d", MinNix[0], MinNix[1])
	if !versionAtLeast(ver, MinNix) {
		// A warning, not a block: every check bigbang makes works with an
		// older Nix, and nixos-anywhere runs under whichever nix is on PATH
		// at install time.
		return warn(IDNix, fmt.Sprintf("Nix %s is older than %s, which nixos-anywhere needs (bigbang's checks work with it)", ver, min),
			"upgrade Nix before installing: nix profile install nixpkgs#nixVersions.latest (or the installer from https://nixos.org/download); "+
				"Debian 12's nix-bin is 2.8 and too old")
	}
	return ok(IDNix, "Nix "+ver)
}

type platforms struct {
	system string
	extra  []string
	// builders are Nix's remote builders (the builders setting).
	builders []builder
}

// System is this machine's Nix system, e.g. x86_64-linux or
// aarch64-darwin: Go's names for the CPU made Nix's.
func System() string {
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	return arch + "-" + runtime.GOOS
}

// localPlatforms reads what this machine builds without starting nix: the
// system nix was built for (the Go runtime's, which is the same on a
// native install) and extra-platforms from nix.conf ($NIX_CONFIG, the
// user's and the system's files), where binfmt emulation is declared. Nix's
// own default extra-platforms (i686-linux on x86_64-linux) cannot build
// the other architecture, so leaving it out changes no answer.
func localPlatforms(context.Context) platforms {
	p := platforms{system: System()}
	var files []string
	confDir := os.Getenv("NIX_CONF_DIR")
	if confDir == "" {
		confDir = "/etc/nix"
	}
	files = append(files, filepath.Join(confDir, "nix.conf"))
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		files = append(files, filepath.Join(x, "nix", "nix.conf"))
	} else if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".config", "nix", "nix.conf"))
	}
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			p.apply(string(data), filepath.Dir(f), 0)
		}
	}
	p.apply(os.Getenv("NIX_CONFIG"), "", 0)
	return p
}

// apply reads nix.conf lines: `name = value`, the extra- prefix that
// appends, and include / !include of further files.
func (p *platforms) apply(text, dir string, depth int) {
	for _, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "include" || f[0] == "!include") && depth < 4 {
			inc := f[1]
			if !filepath.IsAbs(inc) {
				inc = filepath.Join(dir, inc)
			}
			if data, err := os.ReadFile(inc); err == nil {
				p.apply(string(data), filepath.Dir(inc), depth+1)
			}
			continue
		}
		if len(f) < 2 || f[1] != "=" {
			continue
		}
		switch f[0] {
		case "system":
			if len(f) > 2 {
				p.system = f[2]
			}
		case "extra-platforms":
			p.extra = append([]string(nil), f[2:]...)
		case "extra-extra-platforms":
			p.extra = append(p.extra, f[2:]...)
		}
	}
}

func (p platforms) canBuild(system string) bool {
	if system == p.system {
		return true
	}
	for _, e := range p.extra {
		if e == system {
			return true
		}
	}
	return false
}

// builderFor returns the first remote builder that builds system.
func (p platforms) builderFor(system string) (builder, bool) {
	for _, b := range p.builders {
		if b.builds(system) {
			return b, true
		}
	}
	return builder{}, false
}

// remoteBuildRAM is what nixos-anywhere's docs ask of a target that builds
// its own system in the kexec installer.
const remoteBuildRAM = 1536 << 20

func checkBuild(cfg steps.Config, c *flake.Config, p platforms) steps.Check {
	if c == nil || c.System == "" {
		return skip(IDBuild, "the flake's system is not known, so the build location is not checked")
	}
	local := p.canBuild(c.System)
	via := ""
	if b, found := p.builderFor(c.System); found && !local {
		local, via = true, " through "+b.describe()+" (the builder itself is not contacted by this check)"
	}
	ram := int64(0)
	if cfg.RAM != "" {
		ram, _ = steps.ParseRAM(cfg.RAM)
	}
	emulate := fmt.Sprintf("let this machine build %s (on NixOS: boot.binfmt.emulatedSystems = [ \"%s\" ]; elsewhere qemu-user binfmt "+
		"and extra-platforms = %s in nix.conf), or use a remote builder for %s (builders in nix.conf; on a Mac, nix-darwin's nix.linux-builder.enable = true)",
		c.System, c.System, c.System, c.System)
	options := "build on the target (--build-on remote, needs 1.5G RAM there), " + emulate
	switch cfg.BuildOn {
	case "local":
		if !local {
			return fail(IDBuild, fmt.Sprintf("--build-on local, but this %s machine cannot build %s", p.system, c.System), options)
		}
		return ok(IDBuild, fmt.Sprintf("this %s machine builds %s%s", p.system, c.System, via))
	case "remote":
		if ram > 0 && ram < remoteBuildRAM {
			if local {
				return fail(IDBuild, fmt.Sprintf("--build-on remote, but the target has %s RAM, less than the 1.5G a build there needs", cfg.RAM),
					"use --build-on local: this machine can build "+c.System)
			}
			return fail(IDBuild, fmt.Sprintf("the target has %s RAM, too little to build there, and this %s machine cannot build %s", cfg.RAM, p.system, c.System), options)
		}
		return ok(IDBuild, fmt.Sprintf("%s is built on the target (it needs 1.5G RAM or more)", c.System))
	}
	if local {
		return ok(IDBuild, fmt.Sprintf("this %s machine can build %s%s", p.system, c.System, via))
	}
	if ram > 0 && ram < remoteBuildRAM {
		return fail(IDBuild, fmt.Sprintf("this %s machine cannot build %s and the target's %s RAM is too little to build there", p.system, c.System, cfg.RAM), options)
	}
	return warn(IDBuild, fmt.Sprintf("this %s machine cannot build %s: the target must build it, which needs 1.5G RAM or more there", p.system, c.System),
		"pass --build-on remote (the wizard offers it), or "+emulate)
}

func checkFlake(cfg steps.Config, info *flake.Info, err error) steps.Check {
	if err != nil {
		return fail(IDFlake, "cannot read "+cfg.Flake, err.Error())
	}
	c := info.Config
	var parts []string
	if c.System != "" {
		parts = append(parts, c.System)
	}
	parts = append(parts, c.Boot.Loader())
	if c.Disko == nil {
		parts = append(parts, "no disko layout (disk checks skipped)")
	} else {
		for _, d := range c.Disko.Disks {
			n, _ := flake.MinDiskBytes(d)
			parts = append(parts, fmt.Sprintf("%s needs %s", d.Device, humanBytes(n)))
		}
	}
	if c.Sops == nil {
		parts = append(parts, "no sops-nix (secret checks skipped)")
	}
	how := "read in " + info.Elapsed
	if info.FromCache {
		how = "unchanged since the last run"
	}
	if _, nerr := c.Needs(); nerr != nil {
		return warn(IDFlake, fmt.Sprintf("%s: %s; %s", cfg.Flake, strings.Join(parts, ", "), how), nerr.Error())
	}
	return ok(IDFlake, fmt.Sprintf("%s: %s; %s", cfg.Flake, strings.Join(parts, ", "), how))
}

func humanBytes(n int64) string {
	if n <= 0 {
		return "an unknown size"
	}
	const gib = 1 << 30
	if n >= gib {
		return strconv.FormatFloat(float64(n)/gib, 'f', 2, 64) + " GiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// run runs a quick local command and returns its trimmed stdout.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}
