package remote

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// IDBootDrivers is the boot-critical check: the drivers the machine really
// boots with against the flake's initrd, and the boot settings that leave a
// wiped VPS that never comes back (iSCSI root, console=, EFI variables).
const IDBootDrivers = "remote.boot_drivers"

// neverModules are drivers no kernel builds as a loadable module: an
// initrd cannot list them and needs not.
var neverModules = map[string]bool{"pcieport": true}

// hardwareConfigFix is the other way to get the right initrd modules: let
// nixos-anywhere probe the machine after kexec.
const hardwareConfigFix = "or let the install probe the machine: --generate-hardware-config nixos-facter ./facter.json " +
	"(the flake imports nixos-facter's module and reads that file)"

// bootDisks returns the disks the installed system boots from: the flake's
// disko disks as the target knows them, else the disks "/" is on now.
func bootDisks(f Facts, exp steps.TargetExpect) []string {
	var out []string
	for _, n := range exp.Disks {
		p := f.resolve(n.Device)
		if _, ok := f.DiskDrivers[p]; ok && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = append(out, f.RootDisks...)
	}
	return out
}

// missingModules returns the modules of ds the initrd cannot load, in
// chain order, without duplicates.
func missingModules(ds []Driver, have []string) (missing []Driver) {
	for _, d := range ds {
		if neverModules[d.Name] || neverModules[d.Module] || slices.Contains(have, d.Module) {
			continue
		}
		if !slices.ContainsFunc(missing, func(m Driver) bool { return m.Module == d.Module }) {
			missing = append(missing, d)
		}
	}
	return missing
}

func moduleNames(ds []Driver) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Module
	}
	return out
}

// nixList writes names as a Nix list of strings.
func nixList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	return "[ " + strings.Join(q, " ") + " ]"
}

func builtinNote(ds []Driver) string {
	var b []string
	for _, d := range ds {
		if d.Builtin {
			b = append(b, d.Module)
		}
	}
	if len(b) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s built into the running kernel, which says nothing of the flake's kernel: NixOS's builds them as modules, so list them; listing a built-in one is harmless)",
		strings.Join(b, ", "))
}

// Consoles returns the console= devices of a kernel command line, without
// their options ("ttyS0,115200" is "ttyS0"), up to a "--" that ends the
// kernel's part.
func Consoles(params []string) []string {
	var out []string
	for _, p := range params {
		if p == "--" {
			break
		}
		if v, ok := strings.CutPrefix(p, "console="); ok {
			dev, _, _ := strings.Cut(v, ",")
			if dev != "" && !slices.Contains(out, dev) {
				out = append(out, dev)
			}
		}
	}
	return out
}

// serial reports whether a console device is a serial port, the kind a
// provider's console connection shows.
func serial(dev string) bool {
	for _, p := range []string{"ttyS", "ttyAMA", "hvc", "ttysclp", "ttyPS"} {
		if strings.HasPrefix(dev, p) {
			return true
		}
	}
	return false
}

type bootFindings struct {
	fails, warns, oks []string
	fixes             []string
	// compared says the drivers were compared: without that and without a
	// warning the check is a skip, not an ok.
	compared bool
}

func (b *bootFindings) check() steps.Check {
	fix := strings.Join(b.fixes, "; ")
	switch {
	case len(b.fails) > 0:
		return fail(IDBootDrivers, strings.Join(append(b.fails, b.warns...), "; "), fix)
	case len(b.warns) > 0:
		return warn(IDBootDrivers, strings.Join(b.warns, "; "), fix)
	case !b.compared:
		return skip(IDBootDrivers, "%s", strings.Join(b.oks, "; "))
	}
	return ok(IDBootDrivers, "%s", strings.Join(b.oks, "; "))
}

func checkBootDrivers(f Facts, exp steps.TargetExpect) steps.Check {
	var b bootFindings
	disks := bootDisks(f, exp)
	var diskDrivers []Driver
	for _, d := range disks {
		diskDrivers = append(diskDrivers, f.DiskDrivers[d]...)
	}
	nicKnown := f.NIC != "" && len(f.NICDrivers) > 0
	switch {
	case exp.InitrdModules == nil:
		b.oks = append(b.oks, "the flake does not declare boot.initrd.availableKernelModules (not a NixOS module system?), so the drivers were not compared")
	case len(diskDrivers) == 0:
		b.oks = append(b.oks, "the boot disk's drivers could not be read from /sys, so they were not compared")
	default:
		b.compared = true
		missing := missingModules(diskDrivers, exp.InitrdModules)
		if len(missing) > 0 {
			b.fails = append(b.fails, fmt.Sprintf("the flake's initrd cannot load %s, the driver(s) of the boot disk %s%s: the installed system would not find its root and never come back",
				strings.Join(moduleNames(missing), ", "), strings.Join(disks, ", "), builtinNote(missing)))
			b.fixes = append(b.fixes, fmt.Sprintf("add them to the configuration: boot.initrd.availableKernelModules = %s; (they add to nixpkgs' defaults), %s",
				nixList(moduleNames(missing)), hardwareConfigFix))
		} else {
			b.oks = append(b.oks, fmt.Sprintf("the initrd has the boot disk's drivers (%s: %s)", strings.Join(disks, ", "), strings.Join(uniqueModules(diskDrivers), ", ")))
		}
		if nicKnown {
			nicMissing := missingModules(f.NICDrivers, exp.InitrdModules)
			switch {
			case len(nicMissing) == 0:
				b.oks = append(b.oks, fmt.Sprintf("and the NIC's (%s: %s)", f.NIC, strings.Join(uniqueModules(f.NICDrivers), ", ")))
			case exp.InitrdNetwork:
				b.fails = append(b.fails, fmt.Sprintf("the initrd brings up the network (boot.initrd.network) but cannot load %s, the driver(s) of the NIC %s%s",
					strings.Join(moduleNames(nicMissing), ", "), f.NIC, builtinNote(nicMissing)))
				b.fixes = append(b.fixes, fmt.Sprintf("add boot.initrd.availableKernelModules = %s;, %s", nixList(moduleNames(nicMissing)), hardwareConfigFix))
			default:
				b.warns = append(b.warns, fmt.Sprintf("the initrd lacks %s, the driver(s) of the NIC %s: the installed system loads them once its root is mounted, "+
					"so this only matters to an initrd that needs the network", strings.Join(moduleNames(nicMissing), ", "), f.NIC))
				b.fixes = append(b.fixes, fmt.Sprintf("to be safe add boot.initrd.availableKernelModules = %s; (as nixpkgs' qemu-guest profile and nixos-facter do)",
					nixList(moduleNames(nicMissing))))
			}
		}
	}
	for _, d := range disks {
		if strings.Contains(f.DiskSysfs[d], "/session") {
			b.warns = append(b.warns, fmt.Sprintf("the boot disk %s is attached over iSCSI: the installed system's initrd must log in to the iSCSI target itself, which a plain NixOS configuration does not", d))
			fix := "configure the initrd's iSCSI login (boot.iscsi-initiator with the target's IQN and portal) or use a disk that is not iSCSI"
			if f.IsOracle() {
				fix = "in the Oracle console, use a shape whose boot volume is attached paravirtualized (VM.Standard.A1.Flex is), " +
					"or configure the initrd's iSCSI login (boot.iscsi-initiator with the boot volume's IQN and portal)"
			}
			b.fixes = append(b.fixes, fix)
			break
		}
	}
	bootConsole(f, exp, &b)
	if f.IsOracle() && f.UEFI && exp.EFICanTouch {
		b.warns = append(b.warns, "boot.loader.efi.canTouchEfiVariables is true on Oracle Cloud: after kexec the installer's kernel often has no writable EFI variables there, "+
			"so writing the boot entry fails and the boot loader is not installed (the run still says Done!); Oracle's firmware boots the fallback path \\EFI\\BOOT\\ anyway")
		fix := "set boot.loader.efi.canTouchEfiVariables = false; (systemd-boot installs the fallback path itself)"
		if !exp.SystemdBoot {
			fix = "set boot.loader.efi.canTouchEfiVariables = false; and boot.loader.grub.efiInstallAsRemovable = true; so GRUB installs the fallback path"
		}
		b.fixes = append(b.fixes, fix)
	}
	return b.check()
}

func bootConsole(f Facts, exp steps.TargetExpect, b *bootFindings) {
	if exp.KernelParams == nil || f.Cmdline == "" {
		return
	}
	var live []string
	for _, c := range Consoles(strings.Fields(f.Cmdline)) {
		if serial(c) {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	want := Consoles(exp.KernelParams)
	where := "the provider's serial console"
	if f.IsOracle() {
		where = "Oracle's console connection"
	}
	switch {
	case len(want) > 0 && !slices.ContainsFunc(live, func(c string) bool { return slices.Contains(want, c) }):
		b.warns = append(b.warns, fmt.Sprintf("the flake sets console=%s but this machine's serial console is %s (its /proc/cmdline): "+
			"boot messages and an emergency shell of the installed system would not show on %s", strings.Join(want, ",console="), live[0], where))
		b.fixes = append(b.fixes, fmt.Sprintf("put \"console=%s\" in boot.kernelParams (last, so it is the one /dev/console is)", live[0]))
	case len(want) == 0 && NixSystem(f.Arch) == "x86_64-linux":
		b.warns = append(b.warns, fmt.Sprintf("the flake sets no console= but this machine's serial console is %s: an x86_64 kernel prints nothing there without one, "+
			"so a failed boot would show nothing on %s", live[0], where))
		b.fixes = append(b.fixes, fmt.Sprintf("add boot.kernelParams = [ \"console=tty0\" \"console=%s\" ];", live[0]))
	default:
		b.oks = append(b.oks, "the console reaches "+live[0])
	}
}

func uniqueModules(ds []Driver) []string {
	var out []string
	for _, d := range ds {
		if !neverModules[d.Name] && !slices.Contains(out, d.Module) {
			out = append(out, d.Module)
		}
	}
	return out
}
