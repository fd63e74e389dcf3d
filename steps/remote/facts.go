// Package remote holds what bigbang knows about the target machine (Facts,
// gathered by one script over one SSH session) and the preflight checks over
// it. It does no I/O itself: sshexec runs the script, and the simulated VPS
// of `bigbang demo` answers it with FormatFacts.
package remote

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// FactsVersion is the version of the key=value protocol between the facts
// script and ParseFacts. It changes only when a key changes meaning.
const FactsVersion = 1

// Facts is what the target machine told bigbang about itself. The JSON names
// of the documented keys (arch, os_id, os_variant_id, mem_total_bytes,
// is_root, passwordless_sudo, uefi, hostname, disks) are part of the
// `bigbang check --output json` contract.
type Facts struct {
	Kernel        string `json:"kernel"` // uname -s, "Linux"
	KernelRelease string `json:"kernel_release"`
	Arch          string `json:"arch"`  // uname -m, e.g. "aarch64"
	OSID          string `json:"os_id"` // os-release ID
	OSVariantID   string `json:"os_variant_id"`
	OSPrettyName  string `json:"os_pretty_name"`

	User             string `json:"user"`
	UID              int    `json:"uid"`
	IsRoot           bool   `json:"is_root"`
	HasSudo          bool   `json:"has_sudo"`
	PasswordlessSudo bool   `json:"passwordless_sudo"`
	HasDoas          bool   `json:"has_doas"`
	PasswordlessDoas bool   `json:"passwordless_doas"`

	// Tools lists the programs found on the target among those the install
	// needs (tar, cpio, setsid, curl, wget, …), sorted.
	Tools      []string `json:"tools"`
	SetsidWait bool     `json:"setsid_wait"`
	// Container names the container runtime the target runs in ("docker",
	// "lxc", …); empty when it is a VM or bare metal.
	Container string `json:"container"`

	MemTotalBytes     int64 `json:"mem_total_bytes"`
	MemAvailableBytes int64 `json:"mem_available_bytes"`

	Disks []Disk `json:"disks"`
	// Loops are the attached loop devices, kept apart from Disks: no install
	// wipes one, but a layout laid out on one (a scratch or test disk) can be
	// compared with the flake's; Device finds them.
	Loops []Disk `json:"loops,omitempty"`
	// DiskLinks maps /dev/disk/by-id and by-path names to the device they
	// point at, so a disko layout naming a disk by id can be matched.
	DiskLinks map[string]string `json:"disk_links,omitempty"`

	UEFI              bool   `json:"uefi"`
	SecureBoot        bool   `json:"secure_boot"`
	Lockdown          string `json:"lockdown"` // none, integrity, confidentiality; "" unknown
	KexecLoadDisabled bool   `json:"kexec_load_disabled"`

	Home          string `json:"home"`
	HomeFreeBytes int64  `json:"home_free_bytes"`
	Hostname      string `json:"hostname"`

	HostKeys []HostKey `json:"host_keys"`

	IPv4DefaultRoute bool `json:"ipv4_default_route"`
	IPv6DefaultRoute bool `json:"ipv6_default_route"`
	// IPv6Only is set when the target has an IPv6 default route and no IPv4
	// one: downloads from IPv4-only hosts fail there.
	IPv6Only bool `json:"ipv6_only"`

	// DiskDrivers maps each whole disk ("/dev/sda") to the kernel drivers
	// of its device and the devices above it, nearest first: sd_mod,
	// virtio_scsi, virtio_pci on an Oracle A1. Read from /sys.
	DiskDrivers map[string][]Driver `json:"disk_drivers,omitempty"`
	// DiskSysfs maps each whole disk to its /sys/devices path, which shows
	// how it is attached (an iSCSI disk sits below a session).
	DiskSysfs map[string]string `json:"disk_sysfs,omitempty"`
	// RootDisks are the whole disks "/" lives on (through LVM or LUKS);
	// empty when "/" is not on a disk (tmpfs in the installer, overlay).
	RootDisks []string `json:"root_disks,omitempty"`
	// NIC is the interface of the default route; NICDrivers its drivers
	// as DiskDrivers has them (none for a virtual interface).
	NIC        string   `json:"nic,omitempty"`
	NICDrivers []Driver `json:"nic_drivers,omitempty"`
	// ISCSISessions counts the open iSCSI sessions.
	ISCSISessions int `json:"iscsi_sessions"`
	// Cmdline is the running kernel's /proc/cmdline.
	Cmdline string `json:"cmdline,omitempty"`
	// ChassisAssetTag and SysVendor are from /sys/class/dmi/id; Oracle
	// Cloud's machines carry the asset tag "OracleCloud.com".
	ChassisAssetTag string `json:"chassis_asset_tag,omitempty"`
	SysVendor       string `json:"sys_vendor,omitempty"`

	// AuthKeyFiles maps the authorized_keys files a login key can reach
	// root through after kexec (the login user's ~/.ssh/authorized_keys
	// and authorized_keys2 and /etc/ssh/authorized_keys.d/<user>, root's
	// the same) to what the facts script found: "read", "absent",
	// "unreadable", or "unknown" (root's files, without root or
	// passwordless sudo). Nil: not gathered.
	AuthKeyFiles map[string]string `json:"auth_key_files,omitempty"`
	// AuthKeys are the public keys of those files.
	AuthKeys []AuthKey `json:"auth_keys,omitempty"`
	// AuthKeysWritable says the login user can add to (or create)
	// ~/.ssh/authorized_keys, as ssh-copy-id does; AuthKeysLink is where
	// it points when it is a symlink (home-manager's, into /nix/store).
	AuthKeysWritable bool   `json:"auth_keys_writable"`
	AuthKeysLink     string `json:"auth_keys_link,omitempty"`
	// AuthKeysModes are the modes and owners of $HOME, ~/.ssh and
	// ~/.ssh/authorized_keys, which sshd's StrictModes judges.
	AuthKeysModes []PathMode `json:"auth_keys_modes,omitempty"`
	// SSHD is what `sshd -T` says of the running sshd's key settings,
	// keyed by lower-case keyword (authorizedkeysfile,
	// authorizedkeyscommand, strictmodes, pubkeyauthentication,
	// maxauthtries); nil when it could not be read.
	SSHD map[string]string `json:"sshd,omitempty"`
}

// AuthKey is one public key of an authorized_keys file of the target.
type AuthKey struct {
	File        string `json:"file"`
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
	Key         string `json:"key"` // base64 of the wire format
}

// PathMode is the permission bits and owner of a path.
type PathMode struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
	UID  int    `json:"uid"`
}

// Driver is the kernel driver bound to one device of a disk's or NIC's
// chain in /sys.
type Driver struct {
	// Module is the module name the initrd lists ("virtio_pci", "sd_mod"),
	// with the dashes of a driver name made underscores.
	Module string `json:"module"`
	// Builtin says the running kernel has it built in; else it is a
	// loaded module.
	Builtin bool   `json:"builtin"`
	Name    string `json:"name"`   // the driver's own name ("virtio-pci", "sd")
	Device  string `json:"device"` // the sysfs device it drives ("0000:00:04.0")
}

// IsOracle reports whether the target is an Oracle Cloud machine.
func (f Facts) IsOracle() bool {
	return strings.EqualFold(strings.TrimSpace(f.ChassisAssetTag), "OracleCloud.com")
}

// moduleAliases are drivers whose name is not their module's, for a
// driver built in without a module link to tell the module.
var moduleAliases = map[string]string{"sd": "sd_mod", "sr": "sr_mod", "vbd": "xen_blkfront", "vif": "xen_netfront"}

// parseDriver reads "<module> builtin|module <driver> <device>".
func parseDriver(v string) (Driver, bool) {
	fl := strings.Fields(v)
	if len(fl) < 4 {
		return Driver{}, false
	}
	m := fl[0]
	if a, ok := moduleAliases[m]; ok {
		m = a
	}
	return Driver{Module: strings.ReplaceAll(m, "-", "_"), Builtin: fl[1] == "builtin", Name: fl[2], Device: fl[3]}, true
}

func formatDriver(d Driver) string {
	state := "module"
	if d.Builtin {
		state = "builtin"
	}
	return d.Module + " " + state + " " + d.Name + " " + d.Device
}

// Disk is one whole block device of the target.
type Disk struct {
	Path      string `json:"path"`
	Model     string `json:"model"`
	SizeBytes int64  `json:"size_bytes"`
	Type      string `json:"type"` // "disk", or "loop" in Facts.Loops
	// Table is the partition table: "gpt", "dos", or "" when the disk has
	// none or it could not be read.
	Table       string   `json:"table,omitempty"`
	FSType      string   `json:"fstype,omitempty"`
	Mountpoints []string `json:"mountpoints,omitempty"`
	// Partitions lists the partitions and the devices below them (LUKS,
	// LVM, …), parents before children; Type tells them apart.
	Partitions []Partition `json:"partitions"`
}

// Partition is a partition (or other child device) of a Disk.
type Partition struct {
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	Type      string `json:"type"` // "part" for a partition; "crypt", "lvm", … below one
	// PartLabel is the GPT partition name (disko writes disk-<disk>-<name>).
	PartLabel string `json:"partlabel,omitempty"`
	// PartType is the partition type: a lower-case GPT type GUID, or an
	// MBR type such as "0x83".
	PartType    string   `json:"parttype,omitempty"`
	FSType      string   `json:"fstype,omitempty"` // as blkid names it: vfat, ext4, swap, crypto_LUKS, …
	Mountpoints []string `json:"mountpoints,omitempty"`
}

// HostKey is one of the target's SSH host keys.
type HostKey struct {
	Type        string `json:"type"`        // e.g. "ssh-ed25519"
	Key         string `json:"key"`         // base64 of the wire format
	Fingerprint string `json:"fingerprint"` // "SHA256:…", as ssh-keygen -l shows it
}

// HasTool reports whether the named program was found on the target.
func (f Facts) HasTool(name string) bool {
	i := sort.SearchStrings(f.Tools, name)
	return i < len(f.Tools) && f.Tools[i] == name
}

// IsInstaller reports whether the target already runs the NixOS installer
// (nixos-anywhere then skips kexec).
func (f Facts) IsInstaller() bool { return f.OSID == "nixos" && f.OSVariantID == "installer" }

// Disk returns the disk with the given path, following DiskLinks. Loop
// devices are not disks here: an install never targets one.
func (f Facts) Disk(path string) (Disk, bool) { return find(f.Disks, f.resolve(path)) }

// Device is Disk that finds loop devices too, for comparing a layout that
// names one.
func (f Facts) Device(path string) (Disk, bool) {
	path = f.resolve(path)
	if d, ok := find(f.Disks, path); ok {
		return d, true
	}
	return find(f.Loops, path)
}

func (f Facts) resolve(path string) string {
	if t, ok := f.DiskLinks[path]; ok {
		return t
	}
	return path
}

func find(disks []Disk, path string) (Disk, bool) {
	for _, d := range disks {
		if d.Path == path {
			return d, true
		}
	}
	return Disk{}, false
}

// Fingerprint returns the SHA256 fingerprint of a base64 public key blob in
// the form ssh-keygen prints it.
func Fingerprint(b64 string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("host key is not base64: %w", err)
	}
	sum := sha256.Sum256(raw)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}

// ErrTruncatedFacts is returned when the facts output stops before its end
// marker: the script was killed or the connection dropped.
var ErrTruncatedFacts = errors.New("facts output is incomplete")

// ParseFacts reads the key=value lines printed by the facts script (see
// sshexec.FactsScript). Unknown keys are ignored so that a newer script
// works with an older parser.
func ParseFacts(r io.Reader) (Facts, error) {
	var f Facts
	var lsblkJSON string
	probes := map[string]map[string]string{} // device → blkid -p keys
	var probe map[string]string              // the device being read
	mounts := map[string][]string{}
	ended := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "facts_version":
			n, err := strconv.Atoi(v)
			if err != nil || n > FactsVersion {
				return f, fmt.Errorf("facts: unsupported version %q: update bigbang", v)
			}
		case "kernel":
			f.Kernel = v
		case "kernel_release":
			f.KernelRelease = v
		case "arch":
			f.Arch = v
		case "os_id":
			f.OSID = v
		case "os_variant_id":
			f.OSVariantID = v
		case "os_pretty_name":
			f.OSPrettyName = v
		case "user":
			f.User = v
		case "uid":
			f.UID, _ = strconv.Atoi(v)
			f.IsRoot = v == "0"
		case "has_sudo":
			f.HasSudo = v == "1"
		case "sudo_nopasswd":
			f.PasswordlessSudo = v == "1"
		case "has_doas":
			f.HasDoas = v == "1"
		case "doas_nopasswd":
			f.PasswordlessDoas = v == "1"
		case "tool":
			if v != "" && !f.HasTool(v) {
				f.Tools = append(f.Tools, v)
				sort.Strings(f.Tools)
			}
		case "setsid_wait":
			f.SetsidWait = v == "1"
		case "container":
			if v != "none" {
				f.Container = v
			}
		case "mem_total_kb":
			f.MemTotalBytes = kib(v)
		case "mem_available_kb":
			f.MemAvailableBytes = kib(v)
		case "lsblk":
			lsblkJSON = v
		case "probe":
			// `blkid -p -o export` lines: a DEVNAME=… line starts each
			// device, KEY=value lines follow.
			if pk, pv, ok := strings.Cut(v, "="); ok {
				pv = unescapeExport(pv)
				switch {
				case pk == "DEVNAME":
					probe = map[string]string{}
					probes[pv] = probe
				case probe != nil:
					probe[pk] = pv
				}
			}
		case "mount":
			dev, mp, ok := strings.Cut(v, " ")
			if ok {
				mounts[dev] = append(mounts[dev], mp)
			}
		case "disk_link":
			link, target, ok := strings.Cut(v, " ")
			if ok {
				if f.DiskLinks == nil {
					f.DiskLinks = map[string]string{}
				}
				f.DiskLinks[link] = target
			}
		case "uefi":
			f.UEFI = v == "1"
		case "secure_boot":
			f.SecureBoot = v == "1"
		case "lockdown":
			f.Lockdown = lockdownMode(v)
		case "kexec_load_disabled":
			f.KexecLoadDisabled = v == "1"
		case "home":
			f.Home = v
		case "home_free_kb":
			f.HomeFreeBytes = kib(v)
		case "hostname":
			f.Hostname = v
		case "host_key":
			fields := strings.Fields(v)
			if len(fields) >= 2 {
				fp, err := Fingerprint(fields[1])
				if err == nil {
					f.HostKeys = append(f.HostKeys, HostKey{Type: fields[0], Key: fields[1], Fingerprint: fp})
				}
			}
		case "ipv4_default_route":
			f.IPv4DefaultRoute = v == "1"
		case "ipv6_default_route":
			f.IPv6DefaultRoute = v == "1"
		case "disk_driver":
			disk, rest, ok := strings.Cut(v, " ")
			if d, good := parseDriver(rest); ok && good {
				if f.DiskDrivers == nil {
					f.DiskDrivers = map[string][]Driver{}
				}
				f.DiskDrivers[disk] = append(f.DiskDrivers[disk], d)
			}
		case "disk_sysfs":
			if disk, p, ok := strings.Cut(v, " "); ok {
				if f.DiskSysfs == nil {
					f.DiskSysfs = map[string]string{}
				}
				f.DiskSysfs[disk] = p
			}
		case "root_disk":
			if v != "" && !slices.Contains(f.RootDisks, v) {
				f.RootDisks = append(f.RootDisks, v)
			}
		case "nic":
			f.NIC = v
		case "nic_driver":
			if _, rest, ok := strings.Cut(v, " "); ok {
				if d, good := parseDriver(rest); good {
					f.NICDrivers = append(f.NICDrivers, d)
				}
			}
		case "iscsi_sessions":
			f.ISCSISessions, _ = strconv.Atoi(strings.TrimSpace(v))
		case "cmdline":
			f.Cmdline = strings.TrimSpace(v)
		case "chassis_asset_tag":
			f.ChassisAssetTag = strings.TrimSpace(v)
		case "sys_vendor":
			f.SysVendor = strings.TrimSpace(v)
		case "authkey_file":
			if state, path, ok := strings.Cut(v, " "); ok && path != "" {
				if f.AuthKeyFiles == nil {
					f.AuthKeyFiles = map[string]string{}
				}
				// The same file can be listed twice (root's home is
				// $HOME): what was read wins.
				if f.AuthKeyFiles[path] != "read" {
					f.AuthKeyFiles[path] = state
				}
			}
		case "authkey":
			typ, rest, _ := strings.Cut(v, " ")
			blob, path, _ := strings.Cut(rest, " ")
			if fp, err := Fingerprint(blob); err == nil && typ != "" && path != "" {
				k := AuthKey{File: path, Type: typ, Fingerprint: fp, Key: blob}
				if !slices.Contains(f.AuthKeys, k) {
					f.AuthKeys = append(f.AuthKeys, k)
				}
			}
		case "authkeys_writable":
			f.AuthKeysWritable = v == "1"
		case "authkeys_link":
			f.AuthKeysLink = strings.TrimSpace(v)
		case "authkeys_mode":
			fl := strings.SplitN(v, " ", 3)
			if len(fl) == 3 {
				mode, err1 := strconv.ParseUint(fl[0], 8, 32)
				uid, err2 := strconv.Atoi(fl[1])
				if err1 == nil && err2 == nil {
					f.AuthKeysModes = append(f.AuthKeysModes, PathMode{Path: fl[2], Mode: uint32(mode), UID: uid})
				}
			}
		case "sshd":
			kw, val, _ := strings.Cut(strings.TrimSpace(v), " ")
			if kw != "" {
				if f.SSHD == nil {
					f.SSHD = map[string]string{}
				}
				f.SSHD[strings.ToLower(kw)] = strings.TrimSpace(val)
			}
		case "end":
			ended = true
		}
	}
	if err := sc.Err(); err != nil {
		return f, fmt.Errorf("facts: reading: %w", err)
	}
	f.IPv6Only = f.IPv6DefaultRoute && !f.IPv4DefaultRoute
	if lsblkJSON != "" {
		disks, loops, err := parseLsblk(lsblkJSON)
		if err != nil {
			return f, fmt.Errorf("facts: %w", err)
		}
		f.Disks, f.Loops = disks, loops
	}
	fillFromFallbacks(f.Disks, probes, mounts)
	fillFromFallbacks(f.Loops, probes, mounts)
	if f.Disks == nil {
		// A target without disks reports an empty list, not null: readers
		// of `check --output json` iterate over facts.disks.
		f.Disks = []Disk{}
	}
	if !ended {
		return f, fmt.Errorf("facts: %w: run again; if it persists, check that /bin/sh works for the login user", ErrTruncatedFacts)
	}
	return f, nil
}

func kib(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n * 1024
}

// lockdownMode reads /sys/kernel/security/lockdown, where the active mode is
// the bracketed word: "none [integrity] confidentiality".
func lockdownMode(v string) string {
	if i := strings.IndexByte(v, '['); i >= 0 {
		if j := strings.IndexByte(v[i:], ']'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return strings.TrimSpace(v)
}

// unescapeExport undoes the backslash escapes blkid's export format puts
// before characters a shell would read specially ("my\ disk").
func unescapeExport(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// lsblkNumber accepts a size as a JSON number (lsblk ≥ 2.33) or as a string
// (older lsblk prints every column as a string).
type lsblkNumber int64

func (n *lsblkNumber) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("lsblk size %q: %w", s, err)
	}
	*n = lsblkNumber(v)
	return nil
}

// lsblkDev is one device of `lsblk -J`; FormatFacts writes the same shape.
type lsblkDev struct {
	Name        string      `json:"name,omitempty"`
	Path        string      `json:"path"`
	PKName      *string     `json:"pkname,omitempty"`
	Model       *string     `json:"model"`
	Size        lsblkNumber `json:"size"`
	Type        string      `json:"type"`
	FSType      *string     `json:"fstype"`
	PartLabel   *string     `json:"partlabel"`
	PartType    *string     `json:"parttype"`
	PTType      *string     `json:"pttype"`
	Mountpoint  *string     `json:"mountpoint,omitempty"`
	Mountpoints []*string   `json:"mountpoints"`
	Children    []lsblkDev  `json:"children,omitempty"`
}

func (d lsblkDev) path() string {
	if d.Path != "" {
		return d.Path
	}
	return "/dev/" + d.Name
}

func (d lsblkDev) mountpoints() []string {
	var out []string
	for _, m := range d.Mountpoints {
		if m != nil && *m != "" {
			out = append(out, *m)
		}
	}
	if d.Mountpoint != nil && *d.Mountpoint != "" && len(out) == 0 {
		out = append(out, *d.Mountpoint)
	}
	return out
}

// partitions returns d and the devices below it, parents first.
func (d lsblkDev) partitions() []Partition {
	out := []Partition{{
		Path: d.path(), SizeBytes: int64(d.Size), Type: d.Type, PartLabel: deref(d.PartLabel),
		PartType: strings.ToLower(deref(d.PartType)), FSType: deref(d.FSType), Mountpoints: d.mountpoints(),
	}}
	for _, c := range d.Children {
		out = append(out, c.partitions()...)
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

// parseLsblk reads `lsblk -J -b` output into the disks and the loop
// devices, each with its partitions. It takes both lsblk's tree
// (partitions as children) and a flat list where partitions name their
// disk in PKNAME: lsblk prints that where sysfs shows no hierarchy, as for
// loop devices in containers.
func parseLsblk(s string) (disks, loops []Disk, err error) {
	var doc struct {
		Blockdevices []lsblkDev `json:"blockdevices"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return nil, nil, fmt.Errorf("lsblk output is not JSON: %w", err)
	}
	var all []Disk
	index := map[string]int{} // kernel name and path → index in all
	for _, d := range doc.Blockdevices {
		if d.Type != "disk" && d.Type != "loop" {
			continue
		}
		disk := Disk{
			Path: d.path(), Model: deref(d.Model), SizeBytes: int64(d.Size), Type: d.Type, Table: deref(d.PTType),
			FSType: deref(d.FSType), Mountpoints: d.mountpoints(), Partitions: []Partition{},
		}
		for _, c := range d.Children {
			disk.Partitions = append(disk.Partitions, c.partitions()...)
		}
		index[disk.Path] = len(all)
		index[strings.TrimPrefix(disk.Path, "/dev/")] = len(all)
		all = append(all, disk)
	}
	for _, d := range doc.Blockdevices {
		if d.Type != "part" {
			continue
		}
		if i, ok := index[deref(d.PKName)]; ok {
			all[i].Partitions = append(all[i].Partitions, d.partitions()...)
		}
	}
	disks = []Disk{}
	for _, d := range all {
		if d.Type == "loop" {
			loops = append(loops, d)
		} else {
			disks = append(disks, d)
		}
	}
	return disks, loops, nil
}

// fillFromFallbacks completes what lsblk could not read from the udev
// database (minimal images, rescue systems and containers have none):
// filesystems, partition tables, names and types from `blkid -p`, which
// reads the devices themselves, and mount points from /proc/mounts.
func fillFromFallbacks(disks []Disk, probes map[string]map[string]string, mounts map[string][]string) {
	for i := range disks {
		d := &disks[i]
		kv := probes[d.Path]
		d.FSType = or(d.FSType, kv["TYPE"])
		d.Table = or(d.Table, kv["PTTYPE"])
		if len(d.Mountpoints) == 0 {
			d.Mountpoints = mounts[d.Path]
		}
		for j := range d.Partitions {
			p := &d.Partitions[j]
			kv := probes[p.Path]
			p.FSType = or(p.FSType, kv["TYPE"])
			p.PartLabel = or(p.PartLabel, kv["PART_ENTRY_NAME"])
			p.PartType = or(p.PartType, strings.ToLower(kv["PART_ENTRY_TYPE"]))
			if len(p.Mountpoints) == 0 {
				p.Mountpoints = mounts[p.Path]
			}
		}
	}
}

// or returns s, or else when s is empty.
func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// FormatFacts writes f as the facts script would print it; ParseFacts reads
// it back to an equal Facts. The simulated VPS answers the facts script with
// it.
func FormatFacts(f Facts) string {
	var b strings.Builder
	kv := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	flag := func(k string, v bool) {
		if v {
			kv(k, "1")
		} else {
			kv(k, "0")
		}
	}
	kv("facts_version", strconv.Itoa(FactsVersion))
	kv("kernel", f.Kernel)
	kv("kernel_release", f.KernelRelease)
	kv("arch", f.Arch)
	kv("os_id", f.OSID)
	kv("os_variant_id", f.OSVariantID)
	kv("os_pretty_name", f.OSPrettyName)
	kv("user", f.User)
	kv("uid", strconv.Itoa(f.UID))
	flag("has_sudo", f.HasSudo)
	flag("sudo_nopasswd", f.PasswordlessSudo)
	flag("has_doas", f.HasDoas)
	flag("doas_nopasswd", f.PasswordlessDoas)
	for _, t := range f.Tools {
		kv("tool", t)
	}
	flag("setsid_wait", f.SetsidWait)
	if f.Container == "" {
		kv("container", "none")
	} else {
		kv("container", f.Container)
	}
	kv("mem_total_kb", strconv.FormatInt(f.MemTotalBytes/1024, 10))
	kv("mem_available_kb", strconv.FormatInt(f.MemAvailableBytes/1024, 10))
	kv("lsblk", formatLsblk(append(append([]Disk(nil), f.Disks...), f.Loops...)))
	links := make([]string, 0, len(f.DiskLinks))
	for l := range f.DiskLinks {
		links = append(links, l)
	}
	sort.Strings(links)
	for _, l := range links {
		kv("disk_link", l+" "+f.DiskLinks[l])
	}
	flag("uefi", f.UEFI)
	flag("secure_boot", f.SecureBoot)
	if f.Lockdown != "" {
		kv("lockdown", "["+f.Lockdown+"]")
	}
	flag("kexec_load_disabled", f.KexecLoadDisabled)
	kv("home", f.Home)
	kv("home_free_kb", strconv.FormatInt(f.HomeFreeBytes/1024, 10))
	kv("hostname", f.Hostname)
	for _, k := range f.HostKeys {
		kv("host_key", k.Type+" "+k.Key)
	}
	flag("ipv4_default_route", f.IPv4DefaultRoute)
	flag("ipv6_default_route", f.IPv6DefaultRoute)
	for _, disk := range sortedKeys(f.DiskSysfs) {
		kv("disk_sysfs", disk+" "+f.DiskSysfs[disk])
	}
	for _, disk := range sortedKeys(f.DiskDrivers) {
		for _, d := range f.DiskDrivers[disk] {
			kv("disk_driver", disk+" "+formatDriver(d))
		}
	}
	for _, d := range f.RootDisks {
		kv("root_disk", d)
	}
	if f.NIC != "" {
		kv("nic", f.NIC)
		for _, d := range f.NICDrivers {
			kv("nic_driver", f.NIC+" "+formatDriver(d))
		}
	}
	kv("iscsi_sessions", strconv.Itoa(f.ISCSISessions))
	kv("cmdline", f.Cmdline)
	kv("chassis_asset_tag", f.ChassisAssetTag)
	kv("sys_vendor", f.SysVendor)
	for _, path := range sortedKeys(f.AuthKeyFiles) {
		kv("authkey_file", f.AuthKeyFiles[path]+" "+path)
	}
	for _, k := range f.AuthKeys {
		kv("authkey", k.Type+" "+k.Key+" "+k.File)
	}
	if f.AuthKeyFiles != nil {
		flag("authkeys_writable", f.AuthKeysWritable)
	}
	if f.AuthKeysLink != "" {
		kv("authkeys_link", f.AuthKeysLink)
	}
	for _, m := range f.AuthKeysModes {
		kv("authkeys_mode", fmt.Sprintf("%o %d %s", m.Mode, m.UID, m.Path))
	}
	for _, k := range sortedKeys(f.SSHD) {
		kv("sshd", k+" "+f.SSHD[k])
	}
	kv("end", "1")
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func formatLsblk(disks []Disk) string {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	opts := func(ss []string) []*string {
		out := make([]*string, len(ss))
		for i := range ss {
			out[i] = &ss[i]
		}
		return out
	}
	doc := struct {
		Blockdevices []lsblkDev `json:"blockdevices"`
	}{Blockdevices: []lsblkDev{}}
	for _, d := range disks {
		x := lsblkDev{Path: d.Path, Model: opt(d.Model), Size: lsblkNumber(d.SizeBytes), Type: d.Type, FSType: opt(d.FSType),
			PTType: opt(d.Table), Mountpoints: opts(d.Mountpoints)}
		for _, p := range d.Partitions {
			x.Children = append(x.Children, lsblkDev{Path: p.Path, Size: lsblkNumber(p.SizeBytes), Type: p.Type, FSType: opt(p.FSType),
				PartLabel: opt(p.PartLabel), PartType: opt(p.PartType), Mountpoints: opts(p.Mountpoints)})
		}
		doc.Blockdevices = append(doc.Blockdevices, x)
	}
	out, _ := json.Marshal(doc)
	return string(out)
}
