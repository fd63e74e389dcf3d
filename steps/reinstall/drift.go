// Package reinstall holds what a reinstall after a disko change needs: the
// drift between the flake's disk layout and the live disks, the backup of
// the machine's state over SSH, and its restore into the new system. It
// reaches the target only through the Remote interface, so its tests use a
// local shell or the real-sshd test host.
package reinstall

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// FlakePartition is one partition of a disko disk, as the flake declares it.
type FlakePartition struct {
	Name       string `json:"name"`                 // the attribute name, e.g. "ESP"
	Size       string `json:"size"`                 // disko's size: "512M", "80G", "100%"
	Format     string `json:"format,omitempty"`     // the filesystem (or "swap", "crypto_LUKS", …) blkid would report; "" for none
	Mountpoint string `json:"mountpoint,omitempty"` // "" when not mounted
	Type       string `json:"type,omitempty"`       // sgdisk type code ("EF00") or a GUID; "" for the default 8300
	Priority   int    `json:"priority,omitempty"`   // disko's priority; 0 means disko's default
	Label      string `json:"label,omitempty"`      // the GPT partition name when the flake sets one; "" for disko's default
}

// FlakeDisk is one disk of the flake's disko layout.
type FlakeDisk struct {
	Name       string           `json:"name"`   // the attribute name under disko.devices.disk
	Device     string           `json:"device"` // e.g. /dev/sda or /dev/disk/by-id/…
	Table      string           `json:"table"`  // "gpt", or "" when the disk holds no partition table
	Partitions []FlakePartition `json:"partitions"`
}

// ErrLayoutRead: the live disk layout could not be read.
var ErrLayoutRead = errors.New("cannot read the live disk layout")

// The kinds of a Change; part of the JSON contract.
const (
	KindChanged = "changed"
	KindAdded   = "added"
	KindRemoved = "removed"
)

// The verdicts of a Report; part of the JSON contract.
const (
	VerdictNone      = "none"
	VerdictReinstall = "reinstall"
)

// Change is one difference between the live layout and the flake's. Kind is
// relative to the flake: added means the flake has it and the disk does not.
type Change struct {
	Kind  string `json:"kind"`
	What  string `json:"what"`
	Live  string `json:"live"`
	Flake string `json:"flake"`
	// Switchable is set for changes a `nixos-rebuild switch` applies (a
	// mountpoint); the others need a fresh install.
	Switchable bool `json:"-"`
}

// Report is the result of Compare.
type Report struct {
	Verdict string   `json:"verdict"`
	Changes []Change `json:"changes"`
	// Unchanged lists what matched, in words, for the plain output.
	Unchanged []string `json:"-"`
}

// MarshalJSON writes the report in the `bigbang drift --output json` shape:
// {"drift": {"verdict": …, "changes": […]}}.
func (r Report) MarshalJSON() ([]byte, error) {
	type inner struct {
		Verdict string   `json:"verdict"`
		Changes []Change `json:"changes"`
	}
	ch := r.Changes
	if ch == nil {
		ch = []Change{}
	}
	return json.Marshal(struct {
		Drift inner `json:"drift"`
	}{inner{r.Verdict, ch}})
}

// Summary says in words what the operator should do.
func (r Report) Summary() string {
	if r.Verdict == VerdictNone {
		if len(r.Changes) == 0 {
			return "no layout change: deploy with `nh os switch` / `nixos-rebuild`, no reinstall"
		}
		return "no partition or filesystem change: deploy with `nh os switch` / `nixos-rebuild`, no reinstall (the switch applies the mountpoint changes)"
	}
	var why []string
	for _, c := range r.Changes {
		if !c.Switchable {
			why = append(why, c.Sentence())
		}
	}
	return "reinstall required because " + strings.Join(why, "; ") +
		": back up /persistent and reinstall with `bigbang reinstall`"
}

// Sentence describes one change in words.
func (c Change) Sentence() string {
	switch c.Kind {
	case KindAdded:
		return fmt.Sprintf("%s is new in the flake (%s)", c.What, c.Flake)
	case KindRemoved:
		return fmt.Sprintf("%s (%s) is no longer in the flake", c.What, c.Live)
	default:
		return fmt.Sprintf("%s changes from %s to %s", c.What, c.Live, c.Flake)
	}
}

// AlignmentTolerance is how far a live partition may differ from the size
// the flake asks for and still count as unchanged: sgdisk, which disko
// drives, aligns partition starts and ends to 1 MiB.
const AlignmentTolerance = int64(1) << 20

// disko's default priorities (lib/types/gpt.nix): partitions sized 100% are
// created last, BIOS boot partitions (EF02) first, the rest in between, each
// group in attribute-name order.
const (
	priorityDefault = 1000
	priorityRest    = 9001
	priorityBIOS    = 100
	gptLabelLimit   = 36
)

// SortedPartitions returns the partitions in the order disko creates them,
// which is also their partition number (1-based) on the disk.
func SortedPartitions(ps []FlakePartition) []FlakePartition {
	out := append([]FlakePartition(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool {
		pi, pj := out[i].priority(), out[j].priority()
		if pi != pj {
			return pi < pj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func (p FlakePartition) priority() int {
	switch {
	case p.Priority != 0:
		return p.Priority
	case p.Size == "100%":
		return priorityRest
	case strings.EqualFold(p.Type, "EF02"):
		return priorityBIOS
	}
	return priorityDefault
}

// PartLabel returns the GPT partition name disko gives partition p of disk
// d: "disk-<disk>-<partition>", or the first 36 hex digits of its SHA-256
// when that is longer than a GPT name may be.
func (d FlakeDisk) PartLabel(p FlakePartition) string {
	if p.Label != "" {
		return p.Label
	}
	l := "disk-" + d.Name + "-" + p.Name
	if len(l) > gptLabelLimit {
		sum := sha256.Sum256([]byte(l))
		return hex.EncodeToString(sum[:])[:gptLabelLimit]
	}
	return l
}

// ParseDiskoSize reads a disko partition size in sgdisk's units: a number
// with K, M, G, T or P (binary multiples), or a plain number of 512-byte
// sectors. "100%" returns ok=false with no error: it matches any size.
func ParseDiskoSize(s string) (bytes int64, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "100%" {
		return 0, false, nil
	}
	if s == "" {
		return 0, false, fmt.Errorf("empty partition size")
	}
	num, mult := s, int64(512)
	if i := strings.IndexByte("KMGTP", strings.ToUpper(s)[len(s)-1]); i >= 0 {
		num, mult = s[:len(s)-1], int64(1)<<(10*(i+1))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("partition size %q is not a disko size such as 512M or 80G", s)
	}
	return n * mult, true, nil
}

// typeGUIDs maps the sgdisk type codes disko layouts use to their GPT GUIDs.
var typeGUIDs = map[string]string{
	"EF00": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", // EFI system
	"EF02": "21686148-6449-6e6f-744e-656564454649", // BIOS boot
	"8300": "0fc63daf-8483-4772-8e79-3d69d8477de4", // Linux filesystem
	"8200": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", // Linux swap
	"8304": "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", // Linux x86-64 root
	"8305": "b921b045-1df0-41c3-af44-4c6f280d3fae", // Linux ARM64 root
	"8309": "ca7d7ccb-63ed-4c53-861c-1742536059cc", // Linux LUKS
	"8E00": "e6d6d379-f507-44c2-a23c-238f2a3df928", // Linux LVM
	"FD00": "a19d880f-05fc-4d3b-a006-743f0f84911e", // Linux RAID
	"BF00": "6a898cc3-1dd2-11b2-99a6-080020736631", // Solaris root (ZFS)
	"0700": "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", // Microsoft basic data
}

// typeGUID returns the GUID of a disko partition type, "" when unknown.
func typeGUID(t string) string {
	if t == "" {
		t = "8300"
	}
	if len(t) == 36 {
		return strings.ToLower(t)
	}
	return typeGUIDs[strings.ToUpper(t)]
}

// typeName shows a type GUID by its sgdisk code when it has one.
func typeName(guid string) string {
	for code, g := range typeGUIDs {
		if g == guid {
			return code
		}
	}
	return guid
}

// Compare sets the flake's disko layout against the live disks, as the
// facts script read them, and says whether a reinstall is needed. A disk
// the flake names by /dev/disk/by-id or by-path is found through the
// facts' links, and a loop device the flake names is compared too. Live
// disks the flake does not name are left alone: they are not disko's.
func Compare(flake []FlakeDisk, live remote.Facts) Report {
	var r Report
	for _, fd := range flake {
		ld, ok := live.Device(fd.Device)
		if !ok {
			r.add(Change{Kind: KindAdded, What: "disk " + fd.Name, Flake: fd.Device + diskSummary(fd)})
			continue
		}
		compareDisk(&r, fd, ld)
	}
	r.Verdict = VerdictNone
	for _, c := range r.Changes {
		if !c.Switchable {
			r.Verdict = VerdictReinstall
		}
	}
	return r
}

func (r *Report) add(c Change) { r.Changes = append(r.Changes, c) }

func (r *Report) same(what string) { r.Unchanged = append(r.Unchanged, what) }

func diskSummary(fd FlakeDisk) string {
	var parts []string
	for _, p := range SortedPartitions(fd.Partitions) {
		parts = append(parts, p.Name+" "+p.Size)
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

// partitions returns the disk's partitions proper: the facts list the
// devices below them (LUKS, LVM) too, which disko does not lay out.
func partitions(d remote.Disk) []remote.Partition {
	var out []remote.Partition
	for _, p := range d.Partitions {
		if p.Type == "part" {
			out = append(out, p)
		}
	}
	return out
}

func compareDisk(r *Report, fd FlakeDisk, ld remote.Disk) {
	diskWhat := fmt.Sprintf("disk %s (%s)", fd.Name, ld.Path)
	if fd.Table != "" && ld.Table != "" && fd.Table != ld.Table {
		r.add(Change{Kind: KindChanged, What: diskWhat + " partition table", Live: ld.Table, Flake: fd.Table})
	} else {
		r.same(diskWhat)
	}
	sorted := SortedPartitions(fd.Partitions)
	// Partitions are matched by their GPT name when the live disk has names
	// (disko always writes them); a live read without names (an lsblk with
	// no udev database and no blkid) falls back to the partition order.
	parts := partitions(ld)
	byLabel := false
	for _, lp := range parts {
		if lp.PartLabel != "" {
			byLabel = true
		}
	}
	used := make([]bool, len(parts))
	for i, fp := range sorted {
		label := fd.PartLabel(fp)
		j := -1
		for k, lp := range parts {
			if used[k] {
				continue
			}
			if byLabel && lp.PartLabel == label || !byLabel && k == i {
				j = k
				break
			}
		}
		what := "partition " + label
		if j < 0 {
			r.add(Change{Kind: KindAdded, What: what, Flake: partSummary(fp)})
			continue
		}
		used[j] = true
		comparePartition(r, what+" ("+parts[j].Path+")", fp, parts[j])
	}
	for k, lp := range parts {
		if used[k] {
			continue
		}
		name := lp.PartLabel
		if name == "" {
			name = lp.Path
		}
		r.add(Change{Kind: KindRemoved, What: "partition " + name, Live: livePartSummary(lp)})
	}
}

func partSummary(fp FlakePartition) string {
	s := fp.Size
	if fp.Format != "" {
		s += " " + fp.Format
	}
	if fp.Mountpoint != "" {
		s += " on " + fp.Mountpoint
	}
	return s
}

func livePartSummary(lp remote.Partition) string {
	s := steps.FormatBytes(lp.SizeBytes)
	if lp.FSType != "" {
		s += " " + lp.FSType
	}
	if len(lp.Mountpoints) > 0 {
		s += " on " + strings.Join(lp.Mountpoints, ", ")
	}
	return s
}

func comparePartition(r *Report, what string, fp FlakePartition, lp remote.Partition) {
	n := len(r.Changes)
	want, fixed, err := ParseDiskoSize(fp.Size)
	switch {
	case err != nil:
		r.add(Change{Kind: KindChanged, What: what + " size", Live: steps.FormatBytes(lp.SizeBytes), Flake: fp.Size + " (not a size bigbang can read)"})
	case fixed && abs(lp.SizeBytes-want) > AlignmentTolerance:
		r.add(Change{Kind: KindChanged, What: what + " size", Live: steps.FormatBytes(lp.SizeBytes), Flake: steps.FormatBytes(want) + " (" + fp.Size + ")"})
	}
	if g := typeGUID(fp.Type); g != "" && lp.PartType != "" && !strings.EqualFold(g, lp.PartType) {
		r.add(Change{Kind: KindChanged, What: what + " type", Live: typeName(strings.ToLower(lp.PartType)), Flake: typeName(g)})
	}
	if fp.Format != lp.FSType {
		r.add(Change{Kind: KindChanged, What: "filesystem on " + what, Live: orNone(lp.FSType), Flake: orNone(fp.Format)})
	}
	// A partition not mounted now (a disk read from a rescue system, a
	// test's loop device) says nothing about its mountpoint. Bind mounts
	// (impermanence) list the partition under several mountpoints; the
	// flake's is one of them when nothing changed.
	if len(lp.Mountpoints) > 0 && fp.Mountpoint != "" && !contains(lp.Mountpoints, fp.Mountpoint) {
		r.add(Change{Kind: KindChanged, What: "mountpoint of " + what, Live: lp.Mountpoints[0], Flake: fp.Mountpoint, Switchable: true})
	}
	if len(r.Changes) == n {
		r.same(what)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
