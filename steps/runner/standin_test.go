package runner

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

// The stand-in behaves as nixos-anywhere 1.13.0 does where bigbang's
// handling depends on it; these tests pin that, against a real sshd.

// OpenSSH cannot resolve "root@[::1]": ssh-copy-id fails and is retried;
// "root@::1" with -p logs in.
func TestStandinIPv6Target(t *testing.T) {
	bin := standin(t)
	testutil.Need(t, "ssh")
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	h := testhost.Start(t, testhost.Options{IPv6: true})
	base := []string{bin, "--flake", ".#vps-arm", "--phases", "disko", "-i", h.ClientKey, "-p", h.PortString()}
	t.Run("bracketed", func(t *testing.T) {
		c := newCollector()
		res, err := Run(context.Background(), Options{
			Argv:    append(base, "root@[::1]"),
			Env:     standinEnv("STANDIN_CONNECT_TRIES=2"),
			LogPath: filepath.Join(t.TempDir(), "run.log"),
			Phases:  []steps.PhaseID{steps.PhaseConnect, steps.PhaseDisko},
		}, c.sink)
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != steps.OutcomeFailed || res.FailedPhase != steps.PhaseConnect {
			t.Fatalf("result %+v, want failed in connect", res)
		}
		errs := 0
		for _, l := range c.lines() {
			if l == "/usr/bin/ssh-copy-id: ERROR: ssh: Could not resolve hostname [::1]: Name or service not known" {
				errs++
			}
		}
		if errs != 2 {
			t.Fatalf("%d resolve errors, want one per try (2):\n%s", errs, strings.Join(c.lines(), "\n"))
		}
	})
	t.Run("plain with -p", func(t *testing.T) {
		c := newCollector()
		res, err := Run(context.Background(), Options{
			Argv:    append(base, "root@::1"),
			Env:     standinEnv("STANDIN_CONNECT_TRIES=1"),
			LogPath: filepath.Join(t.TempDir(), "run.log"),
			Phases:  []steps.PhaseID{steps.PhaseConnect, steps.PhaseDisko},
		}, c.sink)
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != steps.OutcomeSuccess {
			t.Fatalf("result %+v, want success\n%s", res, strings.Join(c.lines(), "\n"))
		}
		want := "Warning: Permanently added '[::1]:" + h.PortString() + "' (ED25519) to the list of known hosts."
		if !contains(c.lines(), want) {
			t.Errorf("no %q: ssh did not log in to ::1", want)
		}
	})
}

// After kexec nixos-anywhere logs in on --post-kexec-ssh-port (22 unless
// given), whatever -p was.
func TestStandinPostKexecPort(t *testing.T) {
	bin := standin(t)
	testutil.Need(t, "ssh")
	h := testhost.Start(t, testhost.Options{})
	// The old system answers on the proxy's port, the installer on the
	// test host's own.
	p := testhost.NewProxy(t, h.Addr(), 0)
	argv := []string{bin, "--flake", ".#vps-arm", "--phases", "kexec", "-i", h.ClientKey, "-p", p.PortString()}
	before := "Warning: Permanently added '[127.0.0.1]:" + p.PortString() + "' (ED25519) to the list of known hosts."
	t.Run("given", func(t *testing.T) {
		c := newCollector()
		res, err := Run(context.Background(), Options{
			Argv:    append(argv, "--post-kexec-ssh-port", h.PortString(), h.User+"@"+h.IP),
			Env:     standinEnv(),
			LogPath: filepath.Join(t.TempDir(), "run.log"),
			Phases:  []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec},
		}, c.sink)
		if err != nil || res.Outcome != steps.OutcomeSuccess {
			t.Fatalf("result %+v, %v\n%s", res, err, strings.Join(c.lines(), "\n"))
		}
		lines := c.lines()
		kexec := indexOf(lines, "### Switching system into kexec ###")
		after := "Warning: Permanently added '[127.0.0.1]:" + h.PortString() + "' (ED25519) to the list of known hosts."
		if kexec < 0 || !contains(lines[:kexec], before) || contains(lines[:kexec], after) {
			t.Errorf("before kexec the logins do not go to -p %s:\n%s", p.PortString(), strings.Join(lines, "\n"))
		}
		if kexec < 0 || !contains(lines[kexec:], after) {
			t.Errorf("after kexec no login on --post-kexec-ssh-port %s:\n%s", h.PortString(), strings.Join(lines, "\n"))
		}
	})
	t.Run("default 22", func(t *testing.T) {
		// Nothing of this test listens on port 22: the wait for the
		// installer goes on for ever, printing ssh's error every 5 s,
		// and the stall names it.
		if c, err := net.DialTimeout("tcp", "127.0.0.1:22", time.Second); err == nil {
			c.Close()
			t.Skip("something listens on port 22 of this machine")
		}
		evs, stall, _ := waitStall(t, Options{
			Argv:         append(argv, h.User+"@"+h.IP),
			Env:          standinEnv(),
			LogPath:      filepath.Join(t.TempDir(), "run.log"),
			Phases:       []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec},
			Stall:        map[steps.PhaseID]time.Duration{steps.PhaseKexec: 7 * time.Second},
			DefaultStall: time.Minute,
		})
		refused := 0
		for _, e := range evs {
			if e.Type == steps.EventLine && e.Text == "ssh: connect to host 127.0.0.1 port 22: Connection refused" {
				refused++
			}
		}
		if refused < 2 {
			t.Errorf("%d refused connections to port 22 before the stall, want at least 2", refused)
		}
		if stall.Phase != steps.PhaseKexec || stall.Loop != steps.LoopKexecUp || !strings.Contains(stall.Text, "the NixOS installer has not answered") ||
			!strings.Contains(stall.Text, "port 22: Connection refused") {
			t.Errorf("stall %+v, want the wait for the installer, named", stall)
		}
	})
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// A reboot that does happen ends the wait, even when the test host stays
// down for less than nixos-anywhere's 1 s between two logins.
func TestStandinRebootHappens(t *testing.T) {
	bin := standin(t)
	tg := liveTarget(t)
	c := newCollector()
	res, err := Run(context.Background(), Options{
		Argv:           append([]string{bin, "--flake", ".#vps-arm", "--build-on", "remote"}, tg.argv...),
		Env:            standinEnv(tg.env...),
		LogPath:        filepath.Join(t.TempDir(), "run.log"),
		Phases:         []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseReboot},
		RebootDeadline: 20 * time.Second,
	}, c.sink)
	if err != nil || res.Outcome != steps.OutcomeSuccess {
		t.Fatalf("result %+v, %v\n%s", res, err, strings.Join(c.lines(), "\n"))
	}
	if !contains(c.lines(), "### Done! ###") {
		t.Fatal("no Done! step")
	}
	if _, err := tg.host.WaitUp(10 * time.Second); err != nil {
		t.Fatalf("the test host did not come back: %v", err)
	}
}
