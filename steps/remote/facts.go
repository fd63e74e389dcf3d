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
}

// Disk is one whole block device of the target.
type Disk struct {
	Path        string      `json:"path"`
	Model       string      `json:"model"`
	SizeBytes   int64       `json:"size_bytes"`
	Type        string      `json:"type"`
	FSType      string      `json:"fstype,omitempty"`
	Mountpoints []string    `json:"mountpoints,omitempty"`
	Partitions  []Partition `json:"partitions"`
}

// Partition is a partition (or other child device) of a Disk.
type Partition struct {
	Path        string   `json:"path"`
	SizeBytes   int64    `json:"size_bytes"`
	Type        string   `json:"type"`
	FSType      string   `json:"fstype,omitempty"`
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

// Disk returns the disk with the given path, following DiskLinks.
func (f Facts) Disk(path string) (Disk, bool) {
	if t, ok := f.DiskLinks[path]; ok {
		path = t
	}
	for _, d := range f.Disks {
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
	fstypes := map[string]string{}
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
		case "blkid":
			// "/dev/vda1: UUID=\"…\" TYPE=\"ext4\"" from blkid, used when
			// lsblk had no udev database to read filesystems from.
			dev, rest, ok := strings.Cut(v, ":")
			if ok {
				if t := blkidValue(rest, "TYPE"); t != "" {
					fstypes[dev] = t
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
		case "end":
			ended = true
		}
	}
	if err := sc.Err(); err != nil {
		return f, fmt.Errorf("facts: reading: %w", err)
	}
	f.IPv6Only = f.IPv6DefaultRoute && !f.IPv4DefaultRoute
	if lsblkJSON != "" {
		disks, err := parseLsblk(lsblkJSON)
		if err != nil {
			return f, fmt.Errorf("facts: %w", err)
		}
		f.Disks = disks
	}
	fillFromFallbacks(f.Disks, fstypes, mounts)
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

func blkidValue(s, key string) string {
	for _, f := range strings.Fields(s) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
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

type lsblkDev struct {
	Name        string      `json:"name"`
	Path        string      `json:"path"`
	Model       *string     `json:"model"`
	Size        lsblkNumber `json:"size"`
	Type        string      `json:"type"`
	FSType      *string     `json:"fstype"`
	Mountpoint  *string     `json:"mountpoint"`
	Mountpoints []*string   `json:"mountpoints"`
	Children    []lsblkDev  `json:"children"`
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

func parseLsblk(s string) ([]Disk, error) {
	var doc struct {
		Blockdevices []lsblkDev `json:"blockdevices"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return nil, fmt.Errorf("lsblk output is not JSON: %w", err)
	}
	disks := []Disk{}
	for _, d := range doc.Blockdevices {
		if d.Type != "disk" {
			continue
		}
		disk := Disk{
			Path: d.path(), Model: deref(d.Model), SizeBytes: int64(d.Size), Type: d.Type,
			FSType: deref(d.FSType), Mountpoints: d.mountpoints(), Partitions: []Partition{},
		}
		var walk func(children []lsblkDev)
		walk = func(children []lsblkDev) {
			for _, c := range children {
				disk.Partitions = append(disk.Partitions, Partition{
					Path: c.path(), SizeBytes: int64(c.Size), Type: c.Type,
					FSType: deref(c.FSType), Mountpoints: c.mountpoints(),
				})
				walk(c.Children)
			}
		}
		walk(d.Children)
		disks = append(disks, disk)
	}
	return disks, nil
}

// fillFromFallbacks completes filesystems and mount points that lsblk could
// not read (no udev database in minimal images and containers) from blkid and
// /proc/mounts.
func fillFromFallbacks(disks []Disk, fstypes map[string]string, mounts map[string][]string) {
	for i := range disks {
		d := &disks[i]
		if d.FSType == "" {
			d.FSType = fstypes[d.Path]
		}
		if len(d.Mountpoints) == 0 {
			d.Mountpoints = mounts[d.Path]
		}
		for j := range d.Partitions {
			p := &d.Partitions[j]
			if p.FSType == "" {
				p.FSType = fstypes[p.Path]
			}
			if len(p.Mountpoints) == 0 {
				p.Mountpoints = mounts[p.Path]
			}
		}
	}
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
	kv("lsblk", formatLsblk(f.Disks))
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
	kv("end", "1")
	return b.String()
}

func formatLsblk(disks []Disk) string {
	type dev struct {
		Path        string   `json:"path"`
		Model       *string  `json:"model"`
		Size        int64    `json:"size"`
		Type        string   `json:"type"`
		FSType      *string  `json:"fstype"`
		Mountpoints []string `json:"mountpoints"`
		Children    []dev    `json:"children,omitempty"`
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	doc := struct {
		Blockdevices []dev `json:"blockdevices"`
	}{Blockdevices: []dev{}}
	for _, d := range disks {
		x := dev{Path: d.Path, Model: opt(d.Model), Size: d.SizeBytes, Type: d.Type, FSType: opt(d.FSType), Mountpoints: d.Mountpoints}
		for _, p := range d.Partitions {
			x.Children = append(x.Children, dev{Path: p.Path, Size: p.SizeBytes, Type: p.Type, FSType: opt(p.FSType), Mountpoints: p.Mountpoints})
		}
		doc.Blockdevices = append(doc.Blockdevices, x)
	}
	out, _ := json.Marshal(doc)
	return string(out)
}
