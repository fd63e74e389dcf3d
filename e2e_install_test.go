package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// e2eFlake is a fixture flake without inputs, shaped like a real NixOS
// configuration, that describes the machine these tests run on: its Nix
// system, a disko layout on one of its real disks, the boot loader its
// firmware needs, and root's key the operator's. The preflight against the
// test host (an sshd on this machine) then passes on its merits.
const e2eFlake = `{
  outputs = { self }:
    let
      operatorKey = builtins.replaceStrings [ "\n" ] [ "" ] (builtins.readFile ./operator.pub);
      efi = @EFI@;
      # The modules of this machine's disk and NIC drivers, read from /sys
      # as the boot-driver check reads them.
      initrdModules = @INITRD@;
      machine = device: machineWith device initrdModules;
      machineWith = device: initrd: {
        pkgs = { system = "@SYSTEM@"; stdenv.hostPlatform.system = "@SYSTEM@"; };
        options = { };
        _type = "configuration";
        config = {
          nixpkgs.hostPlatform = { system = "@SYSTEM@"; };
          system.configurationRevision = "e2e0123abcd";
          boot.initrd = { availableKernelModules = initrd; kernelModules = [ ]; };
          boot.loader = if efi
            then { systemd-boot.enable = true; efi.canTouchEfiVariables = true; grub.enable = false; }
            else { grub = { enable = true; efiSupport = false; device = device; }; systemd-boot.enable = false; };
          services.openssh = { enable = true; ports = [ @PORT@ ]; openFirewall = true; settings.PermitRootLogin = "prohibit-password"; };
          networking.firewall = { enable = true; allowedTCPPorts = [ 22 ]; };
          users.users.root = { name = "root"; group = "root"; extraGroups = [ ]; openssh.authorizedKeys.keys = [ operatorKey ]; openssh.authorizedKeys.keyFiles = [ ]; };
          users.groups.wheel.members = [ ];
          disko.devices.disk.main = {
            inherit device;
            type = "disk";
            content = {
              type = "gpt";
              partitions = (if efi
                then { ESP = { size = "64M"; type = "EF00"; content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; }; }; }
                else { boot = { size = "1M"; type = "EF02"; }; })
                // { root = { size = "100%"; content = { type = "filesystem"; format = "ext4"; mountpoint = "/"; }; }; };
            };
          };
        };
      };
    in {
      nixosConfigurations.machine = machine "@DEVICE@";
      nixosConfigurations.wrong-disk = machine "/dev/bigbang-no-such-disk";
      nixosConfigurations.no-drivers = machineWith "@DEVICE@" [ ];
    };
}
`

// e2e is what the end-to-end tests share: one test host (it reboots from
// test to test onto whatever key the last one shipped), the flake, the
// stand-in, and the flake evaluation cache.
type e2e struct {
	h        *testhost.Host
	flakeDir string
	standin  string
}

// thisMachineDisk returns a disk of this machine larger than 1 GiB, as the
// facts script sees it.
func thisMachineDisk(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("lsblk", "-J", "-b", "-d", "-o", "PATH,SIZE,TYPE").Output()
	if err != nil {
		t.Fatalf("lsblk: %v", err)
	}
	var l struct {
		Blockdevices []struct {
			Path string          `json:"path"`
			Size json.RawMessage `json:"size"`
			Type string          `json:"type"`
		} `json:"blockdevices"`
	}
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("lsblk: %v: %s", err, out)
	}
	for _, d := range l.Blockdevices {
		size, _ := strconv.ParseInt(strings.Trim(string(d.Size), `"`), 10, 64)
		if d.Type == "disk" && size > 1<<30 {
			return d.Path
		}
	}
	t.Skip("this machine has no disk larger than 1 GiB for the fixture's disko layout")
	return ""
}

// thisMachineBootModules returns the initrd modules this machine's disk
// (the fixture's disko device) and default-route NIC need, from /sys.
func thisMachineBootModules(t *testing.T, disk string) []string {
	t.Helper()
	mods := testutil.SysModules("/sys/block/" + filepath.Base(disk) + "/device")
	data, _ := os.ReadFile("/proc/net/route")
	for _, l := range strings.Split(string(data), "\n") {
		if fl := strings.Fields(l); len(fl) > 2 && fl[1] == "00000000" {
			for _, m := range testutil.SysModules("/sys/class/net/" + fl[0] + "/device") {
				if !slices.Contains(mods, m) {
					mods = append(mods, m)
				}
			}
			break
		}
	}
	return mods
}

// nixStrings writes ss as a Nix list of strings.
func nixStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return "[ " + strings.Join(q, " ") + " ]"
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	return newE2EWith(t, testhost.Options{User: "root", WatchRebootRequests: true, RootAtMnt: true})
}

// newE2EWith is newE2E with a test host started with opts.
func newE2EWith(t *testing.T, opts testhost.Options) *e2e {
	t.Helper()
	for _, tool := range []string{"ssh", "tar", "nix", "cpio", "lsblk", "timeout"} {
		testutil.Need(t, tool)
	}
	// The test host logs in root after the "reboot", as the installed
	// system does.
	testutil.NeedRoot(t, "the installed system is reached as root, and the test host is this machine")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	h := testhost.Start(t, opts)
	dir := t.TempDir()
	system := map[string]string{"amd64": "x86_64-linux", "arm64": "aarch64-linux"}[runtime.GOARCH]
	if system == "" {
		t.Skipf("no NixOS system for %s", runtime.GOARCH)
	}
	efi := "false"
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		efi = "true"
	}
	// The installed system's sshd listens where the test host does, as a
	// flake's services.openssh.ports says where the new system answers.
	disk := thisMachineDisk(t)
	flake := strings.NewReplacer("@SYSTEM@", system, "@DEVICE@", disk, "@EFI@", efi, "@PORT@", h.PortString(),
		"@INITRD@", nixStrings(thisMachineBootModules(t, disk))).Replace(e2eFlake)
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte(flake), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "operator.pub"), []byte(h.ClientPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &e2e{h: h, flakeDir: dir, standin: buildStandin(t)}
}

// e2eRun is one install: its extra-files tree, known_hosts, transcript and
// the stand-in's environment.
type e2eRun struct {
	keys, knownHosts, log, copy, pidFile, hostKeyPub string
	otherHosts                                       []string
	// state is XDG_STATE_HOME of the run: the receipts go there.
	state string
}

// newRun prepares an install: the extra-files tree with a new host key
// (0600, its .pub 0644) and a nested file (0640), a known_hosts that pins
// the test host as it is now among entries for other hosts, and an empty
// target root.
func (x *e2e) newRun(t *testing.T) *e2eRun {
	t.Helper()
	dir := t.TempDir()
	r := &e2eRun{keys: filepath.Join(dir, "keys"), knownHosts: filepath.Join(dir, "known_hosts"),
		log: filepath.Join(dir, "logs", "install.log"), copy: filepath.Join(dir, "printed"), pidFile: filepath.Join(dir, "pid"),
		state: filepath.Join(dir, "state")}
	t.Setenv("XDG_STATE_HOME", r.state)
	sshDir := filepath.Join(r.keys, "persistent", "etc", "ssh")
	app := filepath.Join(r.keys, "persistent", "var", "lib", "app")
	for _, d := range []string{sshDir, app} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, pub, err := testhost.GenerateKey(sshDir, "ssh_host_ed25519_key", "")
	if err != nil {
		t.Fatal(err)
	}
	r.hostKeyPub = pub
	if err := os.WriteFile(filepath.Join(app, "config"), []byte("token = 42\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(app, "config"), 0o640); err != nil {
		t.Fatal(err)
	}
	_, other, err := testhost.GenerateKey(dir, "other", "")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(other)
	r.otherHosts = []string{"vps-old.example.org " + f[0] + " " + f[1], "[127.0.0.1]:1 " + f[0] + " " + f[1]}
	x.h.WriteKnownHosts(r.knownHosts, r.otherHosts...)

	entries, _ := os.ReadDir(x.h.Root)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(x.h.Root, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("STANDIN_TARGET_ROOT", x.h.Root)
	// After kexec the stand-in moves to --post-kexec-ssh-port, 22 when it
	// is not given, as nixos-anywhere 1.13.0 does: the runs pass it.
	t.Setenv("STANDIN_REBOOT_REQUEST", x.h.RebootRequestFile)
	t.Setenv("STANDIN_REBOOT_DELAY", "300ms")
	t.Setenv("STANDIN_CONNECT_TRIES", "1")
	t.Setenv("STANDIN_COPY", r.copy)
	t.Setenv("STANDIN_PIDFILE", r.pidFile)
	return r
}

func (x *e2e) args(r *e2eRun, extra ...string) []string {
	h := x.h
	return append([]string{"install", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
		"--known-hosts", r.knownHosts, "--flake", x.flakeDir + "#machine", "--extra-files", r.keys,
		"--nixos-anywhere", x.standin, "--yes-wipe", h.IP, "--log", r.log, "--post-kexec-ssh-port", h.PortString()}, extra...)
}

// runFailing runs the install with --output json, which must fail (exit
// status 1), and returns its events, the last one the result, and its
// standard error.
func (x *e2e) runFailing(ctx context.Context, t *testing.T, r *e2eRun) (evs []e2eEvent, stderr string) {
	t.Helper()
	code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json")...)
	if code != cli.Failed {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	evs = parseJSONLines[e2eEvent](t, stdout)
	if len(evs) == 0 || evs[len(evs)-1].Type != "result" {
		t.Fatalf("the install did not end with a result:\n%s", stdout)
	}
	explainAgrees(t, r.log, evs[len(evs)-1])
	return evs, stderr
}

type e2eEvent struct {
	jsonEvent
	ID      string `json:"id"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
	Resume  string `json:"resume"`
}

// treeModes lists every file and folder under dir (but dir itself) with
// its mode and, for files, its content.
func treeModes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		v := fmt.Sprintf("%v", fi.Mode())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInstallEndToEnd runs `bigbang install --output json` against a real
// sshd and the stand-in nixos-anywhere, which really logs in with ssh,
// streams the extra files with tar into the test host's target root and
// reboots the host onto the key that came with them.
func TestInstallEndToEnd(t *testing.T) {
	x := newE2E(t)
	needVPS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("success: files copied, reboot verified, key pinned", func(t *testing.T) {
		r := x.newRun(t)
		code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json")...)
		if code != cli.OK {
			ents, _ := os.ReadDir(x.h.Dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nsshd: %s\nfiles: %v", code, stdout, stderr, readFile(t, x.h.LogFile()), names)
		}
		evs := parseJSONLines[e2eEvent](t, stdout)
		explainAgrees(t, r.log, evs[len(evs)-1])

		// check…, phase pending…, running/done…, result success.
		firstPhase, checks, bootChecks := -1, 0, 0
		var running []string
		states := map[string]string{}
		for i, e := range evs {
			switch e.Type {
			case "check":
				checks++
				if firstPhase >= 0 {
					t.Errorf("check event %d after the install started: %+v", i, e)
				}
				if e.Status == "fail" {
					t.Errorf("check %s failed: %s", e.ID, e.Summary)
				}
				// The fixture declares the initrd modules of this
				// machine's real disk and NIC, and the test host's key
				// is in a file the kexec image copies to root: both
				// checks run, and pass on their merits.
				if e.ID == remote.IDBootDrivers || e.ID == remote.IDRootKeys {
					bootChecks++
					if e.Status != "ok" {
						t.Errorf("check %s is %s, want ok: %s", e.ID, e.Status, e.Summary)
					}
				}
			case "phase":
				if firstPhase < 0 {
					firstPhase = i
				}
				if e.State == "running" && states[e.Phase] != "running" {
					running = append(running, e.Phase)
				}
				if e.State == "pending" && states[e.Phase] != "" {
					t.Errorf("%s pending after %s", e.Phase, states[e.Phase])
				}
				states[e.Phase] = e.State
			case "line":
				if firstPhase < 0 {
					t.Errorf("line before the first phase event: %+v", e)
				}
			}
		}
		if bootChecks != 2 {
			t.Errorf("%d of remote.boot_drivers and remote.root_keys were sent, want both", bootChecks)
		}
		if checks < len(remote.IDs) {
			t.Errorf("%d check events, want the local checks and all %d remote ones", checks, len(remote.IDs))
		}
		if firstPhase < 0 || evs[firstPhase].State != "pending" || evs[firstPhase].Phase != "connect" {
			t.Fatalf("first phase event %+v, want connect pending", evs[max(firstPhase, 0)])
		}
		if got, want := strings.Join(running, ","), "connect,kexec,disko,install,keys,reboot"; got != want {
			t.Errorf("phases ran in the order %s, want %s", got, want)
		}
		for p, s := range states {
			if s != "done" {
				t.Errorf("phase %s ended %s", p, s)
			}
		}
		res := evs[len(evs)-1]
		if res.Type != "result" || res.Outcome != "success" || res.Log != r.log {
			t.Fatalf("result %+v", res)
		}
		if prev := evs[len(evs)-2]; prev.Type != "phase" || prev.Phase != "reboot" || prev.State != "done" {
			t.Errorf("the reboot did not end just before the result (after the verification): %+v", prev)
		}

		// The extra files, byte for byte with their modes.
		want, got := treeModes(t, r.keys), treeModes(t, x.h.Root)
		for p, v := range want {
			if got[p] != v {
				t.Errorf("%s on the target: %q, want %q", p, got[p], v)
			}
		}
		for p, v := range map[string]string{
			"persistent/etc/ssh/ssh_host_ed25519_key":     "-rw-------",
			"persistent/etc/ssh/ssh_host_ed25519_key.pub": "-rw-r--r--",
			"persistent/var/lib/app/config":               "-rw-r-----",
		} {
			if !strings.HasPrefix(got[p], v+" ") {
				t.Errorf("%s on the target: %q, want mode %s", p, got[p], v)
			}
		}
		if fi, err := os.Stat(x.h.Root); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("target root: %v %v, want 0755 (chmod 755 /mnt)", fi.Mode(), err)
		}

		// The host came back on the shipped key, and known_hosts pins it.
		kh := x.checkShippedKey(t, r)
		for _, o := range r.otherHosts {
			if !strings.Contains(kh, o+"\n") {
				t.Errorf("known_hosts lost %q:\n%s", o, kh)
			}
		}
		if !strings.Contains(stderr, "log in with: ssh -p "+x.h.PortString()+" root@"+x.h.IP) {
			t.Errorf("stderr does not say how to log in: %s", stderr)
		}

		// The test host is Debian: no nixos-version. The line says what is
		// known instead of leaving blanks.
		var said string
		for _, e := range evs {
			if e.Type == "line" && e.Phase == "reboot" && strings.Contains(e.Text, "host key") && !strings.Contains(e.Text, "waiting for") {
				said = e.Text
			}
		}
		if !strings.Contains(said, "the new system answered with the expected host key "+testhost.Fingerprint(t, r.hostKeyPub)) ||
			!strings.Contains(said, "nixos-version is not available") || strings.Contains(said, "()") {
			t.Errorf("the reboot line does not say what is known: %q", said)
		}

		checkReceipt(t, x, r, testhost.Fingerprint(t, r.hostKeyPub), "done")
		if p := filepath.Join(r.state, "bigbang", "hosts", fmt.Sprintf("%s@%d.json", x.h.IP, x.h.Port)); !strings.Contains(stderr, "bigbang: receipt: "+p) {
			t.Errorf("stderr does not name the receipt %s: %s", p, stderr)
		}

		// status with only --host logs in as the receipt's login (root on
		// the new system's port): the user the install went in as and
		// port 22 would not reach it.
		_, out, errOut := runRoot(ctx, "", "status", "--host", x.h.IP, "-i", x.h.ClientKey, "--known-hosts", r.knownHosts,
			"--flake", x.flakeDir+"#machine", "--no-drift", "--output", "json")
		var st struct {
			Status engine.Status `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status JSON: %v\n%s\n%s", err, out, errOut)
		}
		if !st.Status.Reachable || st.Status.HostKey == nil || st.Status.HostKey.MatchesReceipt == nil || !*st.Status.HostKey.MatchesReceipt {
			t.Errorf("status after the install did not log in as the recorded root@%s:%d: %+v\n%s", x.h.IP, x.h.Port, st.Status, errOut)
		}
	})

	t.Run("failure at disko", func(t *testing.T) {
		r := x.newRun(t)
		t.Setenv("STANDIN_FAIL_PHASE", "disko")
		before := readFile(t, r.knownHosts)
		evs, stderr := x.runFailing(ctx, t, r)
		res := evs[len(evs)-1]
		if res.Type != "result" || res.Outcome != "failed" || res.FailedPhase != "disko" || res.Diagnosis.ID != "disko-layout" || res.ExitCode != 1 {
			t.Fatalf("result %+v", res)
		}
		if !strings.Contains(stderr, "bigbang explain "+r.log) {
			t.Errorf("stderr does not point at the transcript: %s", stderr)
		}
		// After kexec the installer is on --post-kexec-ssh-port; the new
		// system will answer where the flake's sshd listens.
		if want := "bigbang install --host " + x.h.IP + " --user root --port " + x.h.PortString() + " --reboot-port " + x.h.PortString() + " -i " + x.h.ClientKey; !strings.HasPrefix(res.Resume, want) ||
			!strings.HasSuffix(res.Resume, " --phases disko,install,keys,reboot --skip-preflight --log "+r.log+" --output json --yes-wipe "+x.h.IP) {
			t.Errorf("resume %q", res.Resume)
		}
		checkReceipt(t, x, r, "", "failed")
		if got := treeModes(t, x.h.Root); len(got) != 0 {
			t.Errorf("files reached the target although disko failed: %v", got)
		}
		r.keptKnownHosts(t, before)
	})

	t.Run("failure at disko, plain output", func(t *testing.T) {
		r := x.newRun(t)
		t.Setenv("STANDIN_FAIL_PHASE", "disko")
		code, stdout, _ := runRoot(ctx, "", x.args(r, "--output", "plain")...)
		if code != cli.Failed {
			t.Fatalf("exit %d, want 1\n%s", code, stdout)
		}
		for _, want := range []string{
			"[ok] remote.arch: ",
			"\nInstalling " + x.flakeDir + "#machine onto root@" + x.h.IP + "\n",
			"\n==> Connect\n    ### Uploading install SSH keys ###\n",
			"\n==> Disko\n    ### Building disko script ###\n",
			"\n    Could not create partition 2 from 1050624 to 104857566\n",
			"\n<== Disko FAILED in ",
			"in phase Disko (exit status 1).\n  What happened: ",
			"\n  Transcript:    " + r.log + "\n",
			"\n  Resume with:   bigbang install --host " + x.h.IP + " --user root --port " + x.h.PortString() + " --reboot-port " + x.h.PortString(),
			" --phases disko,install,keys,reboot --skip-preflight --log " + r.log + " --output plain --yes-wipe " + x.h.IP + "\n",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("plain output lacks %q", want)
			}
		}
		if strings.Index(stdout, "remote.arch") > strings.Index(stdout, "==> Connect") {
			t.Error("the checks were not shown before the install")
		}
		if t.Failed() {
			t.Log(stdout)
		}
	})

	t.Run("tar fails on the target: the key copy fails with its status", func(t *testing.T) {
		r := x.newRun(t)
		// The target has no /mnt to unpack into (say, disko mounted nothing).
		t.Setenv("STANDIN_TARGET_ROOT", filepath.Join(x.h.Root, "not-mounted"))
		evs, _ := x.runFailing(ctx, t, r)
		res := evs[len(evs)-1]
		// GNU tar exits 2 when it cannot change into the folder; ssh passes
		// the remote status on, and nixos-anywhere's pipefail keeps it.
		if res.Type != "result" || res.Outcome != "failed" || res.FailedPhase != "keys" || res.ExitCode != 2 || res.Diagnosis.ID != "extra-files-copy" {
			t.Fatalf("result %+v", res)
		}
		var said bool
		for _, e := range evs {
			said = said || e.Type == "line" && e.Phase == "keys" && strings.Contains(e.Text, "not-mounted: Cannot open")
		}
		if !said {
			t.Error("tar's error on the target is not among the key copy's lines")
		}
	})

	t.Run("another host key after the reboot is refused", func(t *testing.T) {
		r := x.newRun(t)
		// A second key arrives with the extra files, and the new system
		// (say, an sshd configured with another HostKey path) comes back on
		// it instead of the pre-generated one.
		if _, _, err := testhost.GenerateKey(filepath.Join(r.keys, "persistent", "etc", "ssh"), "ssh_host_other_key", ""); err != nil {
			t.Fatal(err)
		}
		t.Setenv("STANDIN_HOSTKEY_PATH", filepath.Join(x.h.Root, "persistent", "etc", "ssh", "ssh_host_other_key"))
		before := readFile(t, r.knownHosts)
		evs, _ := x.runFailing(ctx, t, r)
		res := evs[len(evs)-1]
		if res.Type != "result" || res.Outcome != "failed" || res.FailedPhase != "reboot" || res.Diagnosis.ID != "reboot.verify" ||
			!strings.Contains(res.Diagnosis.Summary, "expected key is") {
			t.Fatalf("result %+v", res)
		}
		if prev := evs[len(evs)-2]; prev.Type != "phase" || prev.Phase != "reboot" || prev.State != "failed" {
			t.Errorf("event before the result %+v, want reboot failed", prev)
		}
		r.keptKnownHosts(t, before)
	})

	t.Run("unknown host key refused before anything runs", func(t *testing.T) {
		r := x.newRun(t)
		r.unpinTarget(t)
		code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json")...)
		if code != cli.Failed || !strings.Contains(stderr, "remote.hostkey") || !strings.Contains(stderr, "--accept-new-host-key") {
			t.Fatalf("exit %d, want 1 naming remote.hostkey and the flag\n%s", code, stderr)
		}
		var refused bool
		for _, e := range parseJSONLines[e2eEvent](t, stdout) {
			if e.Type != "check" {
				t.Fatalf("%s event although the install was refused", e.Type)
			}
			refused = refused || e.ID == "remote.hostkey" && e.Status == "fail"
		}
		if !refused {
			t.Error("no failing remote.hostkey check event")
		}
		if _, err := os.Stat(r.pidFile); err == nil {
			t.Error("nixos-anywhere ran")
		}
		if _, err := os.Stat(r.log); err == nil {
			t.Error("a transcript was left behind")
		}
	})

	t.Run("changed host key refused, with the command that forgets the old one", func(t *testing.T) {
		r := x.newRun(t)
		pinned := x.pinImpostor(t, r)
		code, _, stderr := runRoot(ctx, "", x.args(r, "--output", "json")...)
		want := fmt.Sprintf("ssh-keygen -R '[%s]:%d' -f %s", x.h.IP, x.h.Port, r.knownHosts)
		if code != cli.Failed || !strings.Contains(stderr, want) {
			t.Fatalf("exit %d, want 1 with %q\n%s", code, want, stderr)
		}
		if _, err := os.Stat(r.pidFile); err == nil {
			t.Error("nixos-anywhere ran")
		}
		r.keptKnownHosts(t, pinned)
	})

	t.Run("blocking check refused before anything runs", func(t *testing.T) {
		r := x.newRun(t)
		args := x.args(r, "--output", "json")
		for i, a := range args {
			if a == x.flakeDir+"#machine" {
				args[i] = x.flakeDir + "#wrong-disk"
			}
		}
		code, _, stderr := runRoot(ctx, "", args...)
		if code != cli.Failed || !strings.Contains(stderr, "remote.disk (disko expects /dev/bigbang-no-such-disk") {
			t.Fatalf("exit %d, want 1 naming remote.disk\n%s", code, stderr)
		}
		if _, err := os.Stat(r.pidFile); err == nil {
			t.Error("nixos-anywhere ran")
		}
	})

	t.Run("boot drivers missing from the initrd: refused before anything runs", func(t *testing.T) {
		mods := thisMachineBootModules(t, thisMachineDisk(t))
		if len(mods) == 0 {
			t.Skip("this machine's disk has no driver in /sys (a container?): nothing for the initrd to lack")
		}
		r := x.newRun(t)
		args := x.args(r, "--output", "json")
		for i, a := range args {
			if a == x.flakeDir+"#machine" {
				args[i] = x.flakeDir + "#no-drivers"
			}
		}
		code, _, stderr := runRoot(ctx, "", args...)
		if code != cli.Failed || !strings.Contains(stderr, "remote.boot_drivers (the flake's initrd cannot load "+mods[0]) {
			t.Fatalf("exit %d, want 1 naming remote.boot_drivers and %s\n%s", code, mods[0], stderr)
		}
		if _, err := os.Stat(r.pidFile); err == nil {
			t.Error("nixos-anywhere ran")
		}
	})

	t.Run("interrupted: exit 130, nothing left, transcript complete", func(t *testing.T) {
		r := x.newRun(t)
		t.Setenv("STANDIN_HANG_PHASE", "install")
		testInterrupt(t, x, r)
	})
}

// checkReceipt reads the receipt of run r's install: mode 0600, the
// target, the flake's revision and disko layout as the preflight evaluated
// them, the host key (fp, "" when the reboot was not verified), the
// transcript, and the reboot phase ending in rebootState.
func checkReceipt(t *testing.T, x *e2e, r *e2eRun, fp string, rebootState steps.PhaseState) {
	t.Helper()
	p := filepath.Join(r.state, "bigbang", "hosts", fmt.Sprintf("%s@%d.json", x.h.IP, x.h.Port))
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("receipt %s: %v %v, want mode 0600", p, fi, err)
	}
	var rec receipt.Receipt
	if err := json.Unmarshal([]byte(readFile(t, p)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Host != x.h.IP || rec.Port != x.h.Port || rec.Flake != x.flakeDir+"#machine" || rec.FlakeRevision != "e2e0123abcd" ||
		rec.HostKeyFingerprint != fp || rec.Log != r.log || rec.InstalledAt.IsZero() {
		t.Errorf("receipt %+v", rec)
	}
	if len(rec.Disko) != 1 || rec.Disko[0].Device != thisMachineDisk(t) || len(rec.Disko[0].Partitions) != 2 {
		t.Errorf("receipt's disko layout %+v", rec.Disko)
	}
	states := map[steps.PhaseID]receipt.PhaseTime{}
	for _, pt := range rec.Phases {
		states[pt.Phase] = pt
	}
	if c := states[steps.PhaseConnect]; c.State != steps.StateDone || c.Seconds <= 0 {
		t.Errorf("receipt's connect phase %+v", c)
	}
	want := rebootState
	if rebootState == steps.StateFailed {
		want = steps.StatePending // the install failed before the reboot
	}
	if got := states[steps.PhaseReboot].State; got != want {
		t.Errorf("receipt's reboot phase %q, want %q (%+v)", got, want, rec.Phases)
	}
}

// testInterrupt runs bigbang as its own process (this test binary, see
// TestInstallProcess) and sends it SIGINT while nixos-anywhere waits in a
// remote command.
func testInterrupt(t *testing.T, x *e2e, r *e2eRun) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstallProcess$")
	cmd.Env = append(os.Environ(), "BIGBANG_TEST_PROCESS_ARGS="+strings.Join(x.args(r, "--output", "json"), "\x1f"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Wait for the stand-in and its ssh to the test host.
	pgid := 0
	deadline := time.Now().Add(60 * time.Second)
	for pgid == 0 || len(testhost.GroupMembers(pgid)) < 2 || !strings.Contains(readFile(t, r.copy), "### Building the system closure ###") {
		select {
		case err := <-exited:
			t.Fatalf("bigbang ended before the interrupt: %v\n%s\n%s", err, stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the stand-in did not start its remote command\n%s", stderr.String())
		}
		pgid = standinPgid(r.pidFile)
	}
	members := testhost.GroupMembers(pgid)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("bigbang did not end within 30 s of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != cli.Interrupted {
		t.Fatalf("exit %d, want 130\n%s", code, stderr.String())
	}
	if left := testhost.GroupMembers(pgid); len(left) > 0 {
		t.Errorf("processes of the stand-in's group %v (were %v) survived", left, members)
	}
	// The error is rendered in a box, wrapped and capitalised.
	if msg := strings.Join(strings.Fields(stderr.String()), " "); !strings.Contains(strings.ToLower(msg), "interrupted; the transcript is in "+strings.ToLower(r.log)) {
		t.Errorf("stderr does not name the transcript:\n%s", stderr.String())
	}
	evs := parseJSONLines[e2eEvent](t, stdout.String())
	if res := evs[len(evs)-1]; res.Type != "result" || res.Outcome != "aborted" || res.Log != r.log {
		t.Errorf("result %+v", res)
	}
	// Every byte the stand-in and its ssh printed is in the transcript,
	// but for the carriage returns the terminal added.
	printed := strings.ReplaceAll(readFile(t, r.copy), "\r", "")
	logged := childPart(strings.ReplaceAll(readFile(t, r.log), "\r", ""))
	if logged != printed || !strings.Contains(logged, "### Building the system closure ###") {
		t.Errorf("transcript differs from what was printed:\n--- transcript\n%q\n--- printed\n%q", logged, printed)
	}
}

// TestInstallProcess is bigbang's main in a process of its own, for the
// tests that signal it; it does nothing in a normal test run.
func TestInstallProcess(t *testing.T) {
	args, ok := os.LookupEnv("BIGBANG_TEST_PROCESS_ARGS")
	if !ok {
		t.Skip("runs only as the child of TestInstallEndToEnd")
	}
	needVPS(t)
	os.Args = append([]string{"bigbang"}, strings.Split(args, "\x1f")...)
	os.Exit(run())
}
