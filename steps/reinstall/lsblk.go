package reinstall

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The markers between the parts of LayoutCommand's output.
const (
	blkidMarker = "--- bigbang blkid ---"
	linksMarker = "--- bigbang links ---"
)

// LsblkColumns are the columns LayoutCommand asks lsblk for, in bytes.
const LsblkColumns = "PATH,PKNAME,MODEL,SIZE,TYPE,FSTYPE,PARTLABEL,PARTTYPE,PTTYPE,MOUNTPOINTS"

// LayoutCommand returns the shell command that reads the live disk layout:
// lsblk's JSON, then `blkid -p` for every block device (lsblk reads
// filesystems and partition names from the udev database, which minimal
// systems and rescue images do not have; blkid probes the devices
// themselves), then the /dev/disk/by-id and by-path links. It only reads;
// blkid -p needs root.
func LayoutCommand() string {
	return "lsblk -J -b -o " + LsblkColumns + "\n" +
		"echo " + blkidMarker + "\n" +
		"for d in $(lsblk -nrpo PATH); do blkid -p -o export -- \"$d\" 2>/dev/null; echo; done\n" +
		"echo " + linksMarker + "\n" +
		"for l in /dev/disk/by-id/* /dev/disk/by-path/*; do [ -e \"$l\" ] && printf '%s %s\\n' \"$l\" \"$(readlink -f -- \"$l\")\"; done\n" +
		"true\n"
}

// ErrLayoutRead is wrapped by the errors of ParseLayout and ParseLsblk.
var ErrLayoutRead = errors.New("cannot read the live disk layout")

// ParseLayout reads the output of LayoutCommand.
func ParseLayout(out []byte) ([]LiveDisk, error) {
	ls, rest, _ := bytes.Cut(out, []byte(blkidMarker+"\n"))
	blk, links, _ := bytes.Cut(rest, []byte(linksMarker+"\n"))
	disks, err := ParseLsblk(ls)
	if err != nil {
		return nil, err
	}
	FillFromBlkid(disks, ParseBlkidExport(blk))
	sc := bufio.NewScanner(bytes.NewReader(links))
	for sc.Scan() {
		link, target, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for i := range disks {
			if disks[i].Path == target {
				disks[i].Aliases = append(disks[i].Aliases, link)
			}
		}
	}
	return disks, nil
}

// lsblkSize accepts a size as a JSON number (lsblk ≥ 2.33) or a string
// (older lsblk prints every column as a string).
type lsblkSize int64

func (n *lsblkSize) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("lsblk size %q: %w", s, err)
	}
	*n = lsblkSize(v)
	return nil
}

type lsblkDevice struct {
	Name        string        `json:"name"`
	Path        string        `json:"path"`
	PKName      *string       `json:"pkname"`
	Model       *string       `json:"model"`
	Size        lsblkSize     `json:"size"`
	Type        string        `json:"type"`
	FSType      *string       `json:"fstype"`
	PartLabel   *string       `json:"partlabel"`
	PartType    *string       `json:"parttype"`
	PTType      *string       `json:"pttype"`
	Mountpoint  *string       `json:"mountpoint"`
	Mountpoints []*string     `json:"mountpoints"`
	Children    []lsblkDevice `json:"children"`
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}

func (d lsblkDevice) path() string {
	if d.Path != "" {
		return d.Path
	}
	return "/dev/" + d.Name
}

func (d lsblkDevice) mountpoints() []string {
	var out []string
	for _, m := range d.Mountpoints {
		if m != nil && *m != "" {
			out = append(out, *m)
		}
	}
	if len(out) == 0 && str(d.Mountpoint) != "" {
		out = append(out, str(d.Mountpoint))
	}
	return out
}

func (d lsblkDevice) partition() LivePartition {
	return LivePartition{
		Path: d.path(), SizeBytes: int64(d.Size), PartLabel: str(d.PartLabel),
		PartTypeGUID: strings.ToLower(str(d.PartType)), FSType: str(d.FSType), Mountpoints: d.mountpoints(),
	}
}

// ParseLsblk reads `lsblk -J -b -o …` output into disks with their
// partitions. It accepts both lsblk's tree (partitions as children) and a
// flat list where partitions name their disk in PKNAME (lsblk prints that
// for loop devices and when given device arguments).
func ParseLsblk(data []byte) ([]LiveDisk, error) {
	var doc struct {
		Blockdevices []lsblkDevice `json:"blockdevices"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: lsblk output is not JSON (%v): check that util-linux's lsblk is installed on the target", ErrLayoutRead, err)
	}
	var disks []LiveDisk
	index := map[string]int{} // kernel name and path → disks index
	for _, d := range doc.Blockdevices {
		if d.Type != "disk" && d.Type != "loop" {
			continue
		}
		ld := LiveDisk{Path: d.path(), Model: str(d.Model), SizeBytes: int64(d.Size), Table: str(d.PTType)}
		for _, c := range d.Children {
			if c.Type == "part" {
				ld.Partitions = append(ld.Partitions, c.partition())
			}
		}
		index[ld.Path] = len(disks)
		index[strings.TrimPrefix(ld.Path, "/dev/")] = len(disks)
		disks = append(disks, ld)
	}
	for _, d := range doc.Blockdevices {
		if d.Type != "part" {
			continue
		}
		i, ok := index[str(d.PKName)]
		if !ok {
			continue
		}
		disks[i].Partitions = append(disks[i].Partitions, d.partition())
	}
	return disks, nil
}

// ParseBlkidExport reads `blkid -p -o export` output for several devices
// (blocks of KEY=value lines, each starting with DEVNAME) into a map from
// device path to its keys.
func ParseBlkidExport(data []byte) map[string]map[string]string {
	out := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			cur = nil
			continue
		}
		v = unescapeExport(v)
		if k == "DEVNAME" {
			cur = map[string]string{}
			out[v] = cur
			continue
		}
		if cur != nil {
			cur[k] = v
		}
	}
	return out
}

// unescapeExport undoes the backslash escapes blkid's export format puts
// before characters a shell would read specially.
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

// FillFromBlkid completes what lsblk left empty (no udev database) from
// blkid's probe of each device.
func FillFromBlkid(disks []LiveDisk, blk map[string]map[string]string) {
	for i := range disks {
		d := &disks[i]
		if kv, ok := blk[d.Path]; ok && d.Table == "" {
			d.Table = kv["PTTYPE"]
		}
		for j := range d.Partitions {
			p := &d.Partitions[j]
			kv, ok := blk[p.Path]
			if !ok {
				continue
			}
			if p.FSType == "" {
				p.FSType = kv["TYPE"]
			}
			if p.PartLabel == "" {
				p.PartLabel = kv["PART_ENTRY_NAME"]
			}
			if p.PartTypeGUID == "" {
				p.PartTypeGUID = strings.ToLower(kv["PART_ENTRY_TYPE"])
			}
		}
	}
}
