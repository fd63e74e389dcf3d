package sshexec

import (
	"bufio"
	"context"
	"encoding/json"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// The facts of this machine, gathered over the real sshd, match what the
// kernel and lsblk say directly.
func TestFactsMatchThisMachine(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	c := dial(t, opts(h, knownHostsFile(t, h)))
	f, err := c.Facts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	uname, _ := exec.Command("uname", "-m").Output()
	if f.Arch != strings.TrimSpace(string(uname)) {
		t.Errorf("arch = %q, uname -m = %q", f.Arch, uname)
	}
	if want := meminfo(t, "MemTotal"); f.MemTotalBytes != want {
		t.Errorf("mem_total_bytes = %d, /proc/meminfo = %d", f.MemTotalBytes, want)
	}
	if f.IsRoot != (os.Geteuid() == 0) {
		t.Errorf("is_root = %v", f.IsRoot)
	}
	if hn, _ := os.Hostname(); f.Hostname != hn {
		t.Errorf("hostname = %q, want %q", f.Hostname, hn)
	}
	if f.Kernel != "Linux" || f.OSID == "" {
		t.Errorf("kernel %q os_id %q", f.Kernel, f.OSID)
	}
	out, err := exec.Command(testutil.Need(t, "lsblk"), "-J", "-b", "-o", "PATH,SIZE,TYPE").Output()
	if err != nil {
		t.Fatalf("lsblk: %v", err)
	}
	var doc struct {
		Blockdevices []struct {
			Path string `json:"path"`
			Size int64  `json:"size"`
			Type string `json:"type"`
		} `json:"blockdevices"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range doc.Blockdevices {
		if d.Type != "disk" {
			continue
		}
		n++
		got, ok := f.Disk(d.Path)
		if !ok || got.SizeBytes != d.Size {
			t.Errorf("disk %s (%d bytes): facts have %+v", d.Path, d.Size, got)
		}
	}
	if len(f.Disks) != n {
		t.Errorf("facts list %d disks, lsblk %d", len(f.Disks), n)
	}
	// The same facts survive the simulator's round trip.
	back, err := remote.ParseFacts(strings.NewReader(remote.FormatFacts(f)))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(f)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Errorf("FormatFacts round trip differs:\n%s\n%s", a, b)
	}
}

func meminfo(t *testing.T, key string) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == key+":" {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			return n * 1024
		}
	}
	t.Fatalf("%s not in /proc/meminfo", key)
	return 0
}
