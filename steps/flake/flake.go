// Package flake reads what bigbang needs of a NixOS flake with one
// `nix eval --json`: the configuration names, the chosen configuration's
// system, disko layout, boot loader, sshd, authorized keys and sops
// settings. The result is plain data, cached by the flake's inputs and tree.
package flake

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

//go:embed apply.nix
var applyTemplate string

// NixFeatures is passed to every nix call: a fresh Nix has flakes off.
var NixFeatures = []string{"--extra-experimental-features", "nix-command flakes"}

// Errors of the evaluation, matched with errors.Is.
var (
	// ErrNoNix: the nix command is not installed.
	ErrNoNix = errors.New("nix is not installed")
	// ErrNoFlake: the flake folder has no flake.nix.
	ErrNoFlake = errors.New("no flake.nix")
	// ErrNoConfig: the flake has no nixosConfigurations entry of that name.
	ErrNoConfig = errors.New("configuration not found")
	// ErrEval: nix could not evaluate the flake.
	ErrEval = errors.New("flake evaluation failed")
)

// ConfigMissingError names the configuration that was asked for and the ones
// the flake has.
type ConfigMissingError struct {
	NixVersion string // the evaluation ran: the version is known
	Flake      string
	Name       string
	Have       []string
}

// Error names the attributes the flake has and how to pick one.
func (e *ConfigMissingError) Error() string {
	have := "none"
	if len(e.Have) > 0 {
		have = strings.Join(e.Have, ", ")
	}
	return fmt.Sprintf("flake %s has no nixosConfigurations.%s (it has: %s): pass --flake %s#<one of them>",
		e.Flake, e.Name, have, e.Flake)
}

// Unwrap makes errors.Is(err, ErrNoConfig) true.
func (e *ConfigMissingError) Unwrap() error { return ErrNoConfig }

// EvalError keeps nix's own message, trimmed to what explains the failure.
type EvalError struct {
	Flake   string
	Message string
}

// Error carries nix's message and how to find where it comes from.
func (e *EvalError) Error() string {
	return fmt.Sprintf("nix could not evaluate %s:\n%s\nfix the flake (nix eval %s --show-trace shows where)", e.Flake, e.Message, steps.ShellQuote(e.Flake))
}

// Unwrap makes errors.Is(err, ErrEval) true.
func (e *EvalError) Unwrap() error { return ErrEval }

// Info is what bigbang knows about the chosen configuration.
type Info struct {
	Ref       string   `json:"ref"`     // as given, e.g. ".#vps-arm"
	Path      string   `json:"path"`    // the flake part, e.g. "."
	Name      string   `json:"name"`    // the configuration name
	Names     []string `json:"names"`   // every nixosConfigurations name
	Config    Config   `json:"config"`  // the chosen configuration
	FromCache bool     `json:"-"`       // served from the cache
	Elapsed   string   `json:"elapsed"` // how long nix took
	// NixVersion is builtins.nixVersion of the nix that evaluated, so that
	// the version check costs no process of its own.
	NixVersion string `json:"nix_version"`
}

// Config is the plain data the apply function returns for one configuration.
type Config struct {
	System   string    `json:"system"`
	Revision *string   `json:"revision"`
	Boot     Boot      `json:"boot"`
	Disko    *Disko    `json:"disko"` // nil: the configuration does not use disko
	SSH      SSH       `json:"ssh"`
	Firewall Firewall  `json:"firewall"`
	Users    []User    `json:"users"`
	Sops     *SopsConf `json:"sops"` // nil: the configuration does not use sops-nix
}

// Boot is the boot loader configuration.
type Boot struct {
	SystemdBoot bool     `json:"systemd_boot"`
	Grub        bool     `json:"grub"`
	GrubEFI     bool     `json:"grub_efi"`
	GrubDevices []string `json:"grub_devices"`
	EFICanTouch bool     `json:"efi_can_touch"`
	// GrubEFIRemovable is boot.loader.grub.efiInstallAsRemovable: GRUB
	// installs to the firmware's fallback path, with no EFI variable.
	GrubEFIRemovable bool `json:"grub_efi_removable"`
	// InitrdAvailable and InitrdKernelModules are
	// boot.initrd.availableKernelModules and boot.initrd.kernelModules; nil
	// when the configuration does not declare them (no NixOS module
	// system), which is "not known", not "none".
	InitrdAvailable     []string `json:"initrd_available_kernel_modules"`
	InitrdKernelModules []string `json:"initrd_kernel_modules"`
	// InitrdNetwork is boot.initrd.network.enable: the initrd itself needs
	// the NIC (remote unlock of an encrypted root).
	InitrdNetwork bool `json:"initrd_network"`
	// KernelParams is boot.kernelParams; nil when not declared.
	KernelParams []string `json:"kernel_params"`
}

// InitrdModules returns every module the initrd can load:
// availableKernelModules and kernelModules, or nil when the configuration
// declares neither.
func (b Boot) InitrdModules() []string {
	if b.InitrdAvailable == nil && b.InitrdKernelModules == nil {
		return nil
	}
	out := make([]string, 0, len(b.InitrdAvailable)+len(b.InitrdKernelModules))
	out = append(out, b.InitrdAvailable...)
	return append(out, b.InitrdKernelModules...)
}

// EFI tells whether the configuration boots with EFI; nil when neither
// systemd-boot nor grub is enabled (another loader bigbang does not know).
func (b Boot) EFI() *bool {
	t, f := true, false
	switch {
	case b.SystemdBoot:
		return &t
	case b.Grub && b.GrubEFI:
		return &t
	case b.Grub:
		return &f
	}
	return nil
}

// Loader names the boot loader for messages.
func (b Boot) Loader() string {
	switch {
	case b.SystemdBoot:
		return "systemd-boot (EFI)"
	case b.Grub && b.GrubEFI:
		return "GRUB (EFI)"
	case b.Grub:
		return "GRUB (BIOS)"
	}
	return "unknown boot loader"
}

// Disko is the disko layout: disks and tmpfs mounts.
type Disko struct {
	Disks []Disk  `json:"disks"`
	Nodev []Nodev `json:"nodev"`
}

// Disk is one disko.devices.disk entry.
type Disk struct {
	Name        string      `json:"name"`
	Device      string      `json:"device"`
	Table       string      `json:"table"`        // "gpt", legacy "table", or a filesystem type on the whole disk
	TableFormat string      `json:"table_format"` // legacy "table": "gpt" or "msdos"
	Partitions  []Partition `json:"partitions"`
	Content     *Content    `json:"content"` // content of a disk without a partition table
}

// Partition is one partition of a disk's table, as disko declares it.
type Partition struct {
	Name     string   `json:"name"`
	Size     *string  `json:"size"`  // sgdisk size: "512M", "100%", bare sectors
	Start    *string  `json:"start"` // sgdisk start; legacy tables: parted start
	End      *string  `json:"end"`   // sgdisk end ("+512M", "-0"); legacy: parted end
	Type     *string  `json:"type"`  // GPT type code such as EF00
	Priority *int     `json:"priority"`
	PartType *string  `json:"part_type"` // legacy table: primary/logical
	Content  *Content `json:"content"`
}

// Content is what a partition holds.
type Content struct {
	Type       string    `json:"type"`
	Format     *string   `json:"format"`
	Mountpoint *string   `json:"mountpoint"`
	Inner      *Content  `json:"inner"`
	Subvolumes []*string `json:"subvolumes"`
}

// Mountpoints lists the mount points in c, including wrapped ones.
func (c *Content) Mountpoints() []string {
	var out []string
	for ; c != nil; c = c.Inner {
		if c.Mountpoint != nil {
			out = append(out, *c.Mountpoint)
		}
		for _, s := range c.Subvolumes {
			if s != nil {
				out = append(out, *s)
			}
		}
	}
	return out
}

// Nodev is a disko.devices.nodev entry, such as a tmpfs root.
type Nodev struct {
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fs_type"`
}

// SSH is services.openssh.
type SSH struct {
	Enable          bool    `json:"enable"`
	Ports           []int   `json:"ports"`
	OpenFirewall    bool    `json:"open_firewall"`
	PermitRootLogin *string `json:"permit_root_login"`
	PasswordAuth    *bool   `json:"password_auth"`
}

// Firewall is networking.firewall.
type Firewall struct {
	Enable   bool  `json:"enable"`
	TCPPorts []int `json:"tcp_ports"`
}

// User is a user who may log in: root, wheel members and users with keys.
type User struct {
	Name     string   `json:"name"`
	Groups   []string `json:"groups"`
	Keys     []string `json:"keys"`
	KeyFiles []string `json:"key_files"`
}

// Wheel reports whether the user is in the wheel group.
func (u User) Wheel() bool {
	for _, g := range u.Groups {
		if g == "wheel" {
			return true
		}
	}
	return false
}

// SopsConf is the sops-nix configuration.
type SopsConf struct {
	SSHKeyPaths     []string `json:"ssh_key_paths"`
	KeyFile         *string  `json:"key_file"`
	DefaultSopsFile *string  `json:"default_sops_file"`
	Secrets         []string `json:"secrets"`
}

// applyFunction returns the Nix function applied to nixosConfigurations,
// with the configuration name quoted as a Nix string.
func applyFunction(name string) string {
	return strings.Replace(applyTemplate, "@NAME@", nixString(name), 1)
}

// nixString quotes s as a Nix double-quoted string: backslash, quote and
// the start of an interpolation are escaped.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// LocalDir returns the folder of a local flake reference ("." or
// "path:/x" or "git+file:///x"), or "" for a remote one (github:…).
func LocalDir(flakePath string) string {
	p := flakePath
	for _, pre := range []string{"path:", "git+file://", "git+file:"} {
		if strings.HasPrefix(p, pre) {
			p = strings.TrimPrefix(p, pre)
			if i := strings.IndexAny(p, "?#"); i >= 0 {
				p = p[:i]
			}
			return p
		}
	}
	if strings.Contains(p, ":") {
		return ""
	}
	return p
}

// Command returns the argv of the one nix call that reads the flake.
func Command(flakePath, name string) []string {
	argv := []string{"nix"}
	argv = append(argv, NixFeatures...)
	return append(argv, "eval", "--json", "--no-write-lock-file",
		flakePath+"#nixosConfigurations", "--apply", applyFunction(name))
}

// Evaluate reads the configuration that ref (`path#name`) names with one
// nix eval, or from the cache when the flake has not changed since.
func Evaluate(ctx context.Context, ref string) (*Info, error) {
	path, name, err := splitRef(ref)
	if err != nil {
		return nil, err
	}
	dir := LocalDir(path)
	if dir != "" {
		st, err := os.Stat(filepath.Join(dir, "flake.nix"))
		if err != nil || st.IsDir() {
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("flake %s: %w in %s: run bigbang in your flake's folder or pass --flake <folder>#<name>", path, ErrNoFlake, abs)
		}
	}
	if _, err := exec.LookPath("nix"); err != nil {
		return nil, fmt.Errorf("flake %s: %w: install Nix (https://nixos.org/download) and run again", path, ErrNoNix)
	}
	key := ""
	if dir != "" {
		key = cacheKey(dir, name)
		if info := loadCache(key); info != nil {
			info.Ref, info.FromCache = ref, true
			return info, nil
		}
	}
	info, err := evaluate(ctx, path, name)
	if err != nil {
		return nil, err
	}
	info.Ref = ref
	if key != "" {
		saveCache(key, info)
	}
	return info, nil
}

func splitRef(ref string) (path, name string, err error) {
	i := strings.LastIndex(ref, "#")
	if i < 0 || i == len(ref)-1 {
		return "", "", fmt.Errorf("flake reference %q has no configuration name: write it as <flake>#<name>, e.g. .#vps-arm", ref)
	}
	path = ref[:i]
	if path == "" {
		path = "."
	}
	return path, ref[i+1:], nil
}

type applyResult struct {
	NixVersion string   `json:"nix_version"`
	Names      []string `json:"names"`
	Found      bool     `json:"found"`
	Config     *Config  `json:"config"`
}

func evaluate(ctx context.Context, path, name string) (*Info, error) {
	argv := Command(path, name)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := nowFunc()
	err := cmd.Run()
	elapsed := nowFunc().Sub(start)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("flake %s: %w", path, ctx.Err())
	}
	if err != nil {
		return nil, &EvalError{Flake: path, Message: TrimNixError(stderr.String())}
	}
	var r applyResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, &EvalError{Flake: path, Message: "unexpected output of nix eval: " + err.Error()}
	}
	sort.Strings(r.Names)
	if !r.Found || r.Config == nil {
		return nil, &ConfigMissingError{Flake: path, Name: name, Have: r.Names, NixVersion: r.NixVersion}
	}
	return &Info{Path: path, Name: name, Names: r.Names, Config: *r.Config, Elapsed: elapsed.Round(1e6).String(), NixVersion: r.NixVersion}, nil
}

// TrimNixError keeps the part of nix's stderr that explains an evaluation
// failure: from the first "error:" line, without the dirty-tree warnings and
// the --show-trace hint, at most 12 lines.
func TrimNixError(stderr string) string {
	lines := strings.Split(strings.ReplaceAll(stderr, "\r", ""), "\n")
	startAt := 0
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(stripANSI(l)), "error:") {
			startAt = i
			break
		}
	}
	var out []string
	for _, l := range lines[startAt:] {
		l = strings.TrimRight(stripANSI(l), " ")
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "warning: Git tree") || strings.Contains(t, "--show-trace") {
			continue
		}
		out = append(out, "  "+l)
		if len(out) == 12 {
			out = append(out, "  …")
			break
		}
	}
	if len(out) == 0 {
		return "  (nix printed no error message)"
	}
	return strings.Join(out, "\n")
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
