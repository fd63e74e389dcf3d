package remote_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// rootDiskDrivers finds the whole disk "/" is on (major:minor from
// mountinfo) and reads its drivers; "" when "/" is not on a plain disk.
func rootDiskDrivers(t *testing.T) (disk string, mods []string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", nil
	}
	defer f.Close()
	mm := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) > 4 && fl[4] == "/" {
			mm = fl[2]
		}
	}
	dev, err := filepath.EvalSymlinks("/sys/dev/block/" + mm)
	if err != nil || mm == "" {
		return "", nil
	}
	if _, err := os.Stat(filepath.Join(dev, "partition")); err == nil {
		dev = filepath.Dir(dev)
	}
	return "/dev/" + filepath.Base(dev), testutil.SysModules(filepath.Join(dev, "device"))
}

func defaultNIC() string {
	data, _ := os.ReadFile("/proc/net/route")
	for _, l := range strings.Split(string(data), "\n") {
		if fl := strings.Fields(l); len(fl) > 2 && fl[1] == "00000000" {
			return fl[0]
		}
	}
	return ""
}

// hostFacts runs the real facts script on the real-sshd test host, which is
// this machine.
func hostFacts(t *testing.T) remote.Facts {
	t.Helper()
	_, f, _ := factsOn(t, testhost.Options{})
	return f
}

// factsOn runs the real facts script on a real-sshd test host started
// with opts, logged in with the client key, and returns the host, the
// facts and what the connection knows for the checks.
func factsOn(t *testing.T, opts testhost.Options) (*testhost.Host, remote.Facts, remote.CheckOptions) {
	t.Helper()
	h := testhost.Start(t, opts)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(kh)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sshexec.Dial(ctx, sshexec.Options{
		Target:     sshexec.Target{Host: h.IP, Port: h.Port, User: h.User, Identity: h.ClientKey, SSHConfig: os.DevNull},
		KnownHosts: kh, AgentSocket: "none", Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	f, err := c.Facts(ctx)
	if err != nil {
		t.Fatalf("facts: %v", err)
	}
	return h, f, c.CheckOptions()
}

func nixList(mods []string) string {
	q := make([]string, len(mods))
	for i, m := range mods {
		q[i] = `"` + m + `"`
	}
	return "[ " + strings.Join(q, " ") + " ]"
}

// evalExpect writes a fixture flake whose configuration sets boot (a Nix
// attribute set body) and reads it with the real nix eval.
func evalExpect(t *testing.T, boot string) steps.TargetExpect {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf(`{
  outputs = { self }: {
    nixosConfigurations.vps = { config = { nixpkgs.hostPlatform = "x86_64-linux"; boot = { %s }; }; };
  };
}
`, boot)
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := flake.Evaluate(context.Background(), dir+"#vps")
	if err != nil {
		t.Fatalf("evaluate: %v\n%s", err, text)
	}
	return info.Config.Expect()
}

func bootCheck(f remote.Facts, exp steps.TargetExpect) steps.Check {
	for _, c := range remote.Checks(f, exp, remote.CheckOptions{}) {
		if c.ID == remote.IDBootDrivers {
			return c
		}
	}
	return steps.Check{}
}

// TestBootDriversOnThisMachine compares the facts script's reading of the
// test host's real disk and NIC with the test's own, then runs the check
// against fixture flakes with and without those modules.
func TestBootDriversOnThisMachine(t *testing.T) {
	testutil.Need(t, "nix")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	disk, diskMods := rootDiskDrivers(t)
	if len(diskMods) == 0 {
		t.Skip("/ is not on a disk with a driver in /sys here (a container's overlay?): nothing to compare")
	}
	nic := defaultNIC()
	nicMods := testutil.SysModules("/sys/class/net/" + nic + "/device")
	f := hostFacts(t)
	if !slices.Contains(f.RootDisks, disk) {
		t.Fatalf("facts root disks = %v, want %s", f.RootDisks, disk)
	}
	var got []string
	for _, d := range f.DiskDrivers[disk] {
		if !slices.Contains(got, d.Module) {
			got = append(got, d.Module)
		}
	}
	if !slices.Equal(got, diskMods) {
		t.Fatalf("facts: %s drivers %v, /sys says %v", disk, got, diskMods)
	}
	if f.NIC != nic {
		t.Fatalf("facts NIC = %q, /proc/net/route says %q", f.NIC, nic)
	}
	t.Logf("this machine: %s %v, NIC %s %v, cmdline consoles %v", disk, diskMods, nic, nicMods, remote.Consoles(strings.Fields(f.Cmdline)))

	all := append(append([]string(nil), diskMods...), nicMods...)
	console := ""
	if cs := remote.Consoles(strings.Fields(f.Cmdline)); len(cs) > 0 {
		console = fmt.Sprintf(`"console=%s"`, cs[len(cs)-1])
	}
	tests := []struct {
		name   string
		boot   string
		status steps.Status
		words  []string
	}{
		{"every driver in availableKernelModules", fmt.Sprintf(`initrd.availableKernelModules = %s; initrd.kernelModules = [ ]; kernelParams = [ %s ];`, nixList(all), console),
			steps.StatusOK, append([]string{"the initrd has the boot disk's drivers", disk}, diskMods...)},
		{"split across kernelModules", fmt.Sprintf(`initrd.availableKernelModules = %s; initrd.kernelModules = %s; kernelParams = [ %s ];`, nixList(nicMods), nixList(diskMods), console),
			steps.StatusOK, []string{"the initrd has the boot disk's drivers"}},
		{"disk driver missing", fmt.Sprintf(`initrd.availableKernelModules = %s; initrd.kernelModules = %s;`, nixList(nicMods), nixList(diskMods[1:])),
			steps.StatusFail, []string{diskMods[0], "never come back", "boot.initrd.availableKernelModules = [ \"" + diskMods[0] + "\" ]", "--generate-hardware-config nixos-facter"}},
		{"nothing declared", ``, steps.StatusSkip, []string{"does not declare boot.initrd.availableKernelModules"}},
	}
	if len(nicMods) > 0 {
		tests = append(tests,
			struct {
				name   string
				boot   string
				status steps.Status
				words  []string
			}{"NIC driver missing, initrd network on", fmt.Sprintf(`initrd.availableKernelModules = %s; initrd.network.enable = true;`, nixList(diskMods)),
				steps.StatusFail, []string{nicMods[0], nic, "boot.initrd.network"}},
			struct {
				name   string
				boot   string
				status steps.Status
				words  []string
			}{"NIC driver missing, no initrd network", fmt.Sprintf(`initrd.availableKernelModules = %s; kernelParams = [ %s ];`, nixList(diskMods), console),
				steps.StatusWarn, []string{nicMods[0], "once its root is mounted"}})
	}
	if console != "" {
		tests = append(tests, struct {
			name   string
			boot   string
			status steps.Status
			words  []string
		}{"console elsewhere", fmt.Sprintf(`initrd.availableKernelModules = %s; kernelParams = [ "console=hvc7" ];`, nixList(all)),
			steps.StatusWarn, []string{"console=hvc7", "/proc/cmdline", "boot.kernelParams"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bootCheck(f, evalExpect(t, tt.boot))
			if c.Status != tt.status {
				t.Fatalf("status = %s, want %s: %s (fix: %s)", c.Status, tt.status, c.Summary, c.Fix)
			}
			for _, w := range tt.words {
				if !strings.Contains(c.Summary+" "+c.Fix, w) {
					t.Errorf("does not say %q: %s / %s", w, c.Summary, c.Fix)
				}
			}
			if (c.Status == steps.StatusFail || c.Status == steps.StatusWarn) && c.Fix == "" {
				t.Errorf("%s without a fix", c.Status)
			}
		})
	}
}
