package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

// target is where a stand-in run goes: a TEST-NET address that it only
// prints about, or the real sshd of a test host that it logs in to.
type target struct {
	name  string
	argv  []string // the stand-in's options that name the target
	env   []string
	login string // user@host as ssh-copy-id logs in
	host  *testhost.Host
}

// targets are the two kinds of target, made inside the subtest that uses
// them.
var targets = []struct {
	name string
	mk   func(*testing.T) target
}{
	{"printed", func(*testing.T) target { return offlineTarget() }},
	{"real sshd", liveTarget},
}

func offlineTarget() target {
	return target{name: "printed", argv: []string{"-p", "2222", "opc@192.0.2.7"}, login: "opc@192.0.2.7"}
}

// liveTarget starts a test host whose sshd the stand-in really logs in to.
// Its sshd is not on port 22, so, as an operator of such a host must, it
// passes --post-kexec-ssh-port: after kexec the stand-in, as nixos-anywhere
// does, moves to port 22 otherwise.
func liveTarget(t *testing.T) target {
	t.Helper()
	testutil.Need(t, "ssh")
	testutil.Need(t, "timeout")
	h := testhost.Start(t, testhost.Options{WatchRebootRequests: true})
	return target{
		name:  "real sshd",
		argv:  []string{"-i", h.ClientKey, "-p", h.PortString(), "--post-kexec-ssh-port", h.PortString(), h.User + "@" + h.IP},
		env:   []string{"STANDIN_REBOOT_REQUEST=" + h.RebootRequestFile, "STANDIN_REBOOT_DELAY=300ms"},
		login: h.User + "@" + h.IP,
		host:  h,
	}
}

// runAsync runs the stand-in with opts in the background.
func runAsync(ctx context.Context, opts Options, c *collector) <-chan Result {
	done := make(chan Result, 1)
	go func() {
		res, err := Run(ctx, opts, c.sink)
		if err != nil {
			res.LogErr = err
		}
		done <- res
	}()
	return done
}

func waitResult(t *testing.T, done <-chan Result, within time.Duration) Result {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(within):
		t.Fatalf("Run did not return within %s", within)
	}
	return Result{}
}

// firstEvent returns the index of the first event that satisfies ok, or -1.
func firstEvent(evs []steps.Event, ok func(steps.Event) bool) int {
	for i, e := range evs {
		if ok(e) {
			return i
		}
	}
	return -1
}

func isLine(sub string) func(steps.Event) bool {
	return func(e steps.Event) bool { return e.Type == steps.EventLine && strings.Contains(e.Text, sub) }
}

// The reboot never happens: nixos-anywhere's wait prints ssh's notice
// every ~1.2 s for ever. The deadline stops it and fails the run in the
// reboot phase, named.
func TestRunRebootNeverHappens(t *testing.T) {
	bin := standin(t)
	const deadline = 3 * time.Second
	for _, k := range targets {
		t.Run(k.name, func(t *testing.T) {
			tg := k.mk(t)
			logPath := filepath.Join(t.TempDir(), "run.log")
			c := newCollector()
			done := runAsync(context.Background(), Options{
				Argv:    append([]string{bin, "--flake", ".#vps-arm", "--build-on", "remote"}, tg.argv...),
				Env:     standinEnv(append(tg.env, "STANDIN_REBOOT=never")...),
				LogPath: logPath,
				Phases:  []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseReboot},
				// The stall limit is longer than the deadline: the deadline
				// must end the run on its own.
				Stall:          map[steps.PhaseID]time.Duration{steps.PhaseReboot: time.Minute},
				RebootDeadline: deadline,
				Grace:          time.Second,
				Login:          tg.login,
			}, c)
			res := waitResult(t, done, 40*time.Second)
			if res.LogErr != nil {
				t.Fatal(res.LogErr)
			}
			if res.Outcome != steps.OutcomeFailed || res.FailedPhase != steps.PhaseReboot {
				t.Fatalf("result %+v, want failed in reboot", res)
			}
			d := res.Diagnosis
			if d == nil || d.ID != DiagnosisRebootNever {
				t.Fatalf("diagnosis %+v, want %s", d, DiagnosisRebootNever)
			}
			for _, w := range []string{"installed", "installer", "has not gone down for the reboot within 3s"} {
				if !strings.Contains(d.Summary, w) {
					t.Errorf("summary %q does not say %q", d.Summary, w)
				}
			}
			for _, w := range []string{"console", "Oracle OCI", "ssh root@", "reboot", "Do not run the install again"} {
				if !strings.Contains(d.Remedy, w) {
					t.Errorf("remedy %q does not say %q", d.Remedy, w)
				}
			}
			evs := c.all()
			start := firstEvent(evs, func(e steps.Event) bool {
				return e.Type == steps.EventPhase && e.Phase == steps.PhaseReboot && e.State == steps.StateRunning
			})
			if start < 0 {
				t.Fatal("the reboot phase never started")
			}
			end := evs[len(evs)-1]
			if end.Type != steps.EventResult || end.FailedPhase != steps.PhaseReboot {
				t.Fatalf("last event %+v, want the result", end)
			}
			took := end.Time.Sub(evs[start].Time)
			if took < deadline || took > deadline+4*time.Second {
				t.Errorf("the run ended %s after Rebooting, want between %s and %s", took, deadline, deadline+4*time.Second)
			}
			// The loop was not silent: a byte watchdog would never have
			// fired.
			notices := 0
			for _, e := range evs[start:] {
				if e.Type == steps.EventLine && strings.HasPrefix(e.Text, "Warning: Permanently added") {
					notices++
					if !e.Noise {
						t.Errorf("ssh's notice %q is not flagged as noise", e.Text)
					}
				}
			}
			if notices < 2 {
				t.Errorf("%d notices in the reboot wait, want at least 2 (one every ~1.2 s)", notices)
			}
			stall := firstEvent(evs, func(e steps.Event) bool { return e.Type == steps.EventStall })
			if stall < 0 || evs[stall].Loop != steps.LoopRebootWait || !strings.Contains(evs[stall].Text, "has not gone down for the reboot") {
				t.Errorf("no stall event naming the reboot wait before the result: %v", evs[max(stall, 0):])
			}
			var rebootState steps.PhaseState
			for _, e := range evs {
				if e.Type == steps.EventPhase && e.Phase == steps.PhaseReboot {
					rebootState = e.State
				}
			}
			if rebootState != steps.StateFailed {
				t.Errorf("reboot phase ended %q, want failed", rebootState)
			}
			log, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(string(log), "\nbigbang: stopped nixos-anywhere: the machine has not gone down for the reboot within 3s of the Rebooting step (reboot.never)\n") {
				t.Errorf("the transcript does not end with bigbang's line:\n%s", lastN(string(log), 300))
			}
		})
	}
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitStall runs the stand-in until its first stall, cancels it, and
// returns the events before the stall, the stall and the result.
func waitStall(t *testing.T, opts Options) (evs []steps.Event, stall steps.Event, res Result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newCollector()
	opts.Grace = 500 * time.Millisecond
	done := runAsync(ctx, opts, c)
	c.waitFor(t, "a stall", func(e steps.Event) bool { return e.Type == steps.EventStall })
	cancel()
	res = waitResult(t, done, 20*time.Second)
	evs = c.all()
	i := firstEvent(evs, func(e steps.Event) bool { return e.Type == steps.EventStall })
	return evs[:i], evs[i], res
}

// The reboot wait's notices come more often than the limit, yet the phase
// stalls, and the stall says what is stuck.
func TestRunRebootWaitStallNamed(t *testing.T) {
	bin := standin(t)
	const limit = 2500 * time.Millisecond
	for _, k := range targets {
		t.Run(k.name, func(t *testing.T) {
			tg := k.mk(t)
			evs, stall, res := waitStall(t, Options{
				Argv:           append([]string{bin, "--flake", ".#vps-arm", "--build-on", "remote"}, tg.argv...),
				Env:            standinEnv(append(tg.env, "STANDIN_REBOOT=never")...),
				LogPath:        filepath.Join(t.TempDir(), "run.log"),
				Phases:         []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseReboot},
				Stall:          map[steps.PhaseID]time.Duration{steps.PhaseReboot: limit},
				DefaultStall:   time.Minute,
				RebootDeadline: -1,
			})
			if res.Outcome != steps.OutcomeAborted {
				t.Errorf("outcome %s, want aborted: a stall never stops the run", res.Outcome)
			}
			if stall.Phase != steps.PhaseReboot || stall.Loop != steps.LoopRebootWait || stall.Stall < limit {
				t.Fatalf("stall %+v, want the reboot wait after at least %s", stall, limit)
			}
			if !strings.Contains(stall.Text, "the machine has not gone down for the reboot after 2.") {
				t.Errorf("stall text %q does not name the reboot wait", stall.Text)
			}
			wait := firstEvent(evs, isLine("### Waiting for the machine to become unreachable due to reboot ###"))
			if wait < 0 {
				t.Fatal("no reboot wait step")
			}
			notices := 0
			for _, e := range evs[wait:] {
				if e.Type == steps.EventLine && strings.HasPrefix(e.Text, "Warning: Permanently added") {
					notices++
				}
			}
			if notices < 2 {
				t.Errorf("%d notices before the stall, want at least 2: the loop was not silent", notices)
			}
		})
	}
}

// ssh-copy-id cannot log in: it is retried every 3 s, each turn printing,
// and the stall names it and the login. A --phases list without kexec logs
// in as root whatever user was given.
func TestRunSSHCopyIDLoopStall(t *testing.T) {
	bin := standin(t)
	const limit = 4 * time.Second
	type tc struct {
		name, login, why string
		argv, env        []string
	}
	cases := []func(*testing.T) tc{
		func(*testing.T) tc {
			return tc{"refused, printed", "root@192.0.2.7", "port 2222: Connection refused", []string{"-p", "2222", "opc@192.0.2.7"}, []string{"STANDIN_CONNECT=refused"}}
		},
		func(t *testing.T) tc {
			h := liveTarget(t).host
			// A key the test host does not know.
			other, _, err := testhost.GenerateKey(t.TempDir(), "other", "")
			if err != nil {
				t.Fatal(err)
			}
			return tc{"key refused by a real sshd", "root@" + h.IP, "root@" + h.IP + ": Permission denied (publickey)", []string{"-i", other, "-p", h.PortString(), "opc@" + h.IP}, nil}
		},
		func(t *testing.T) tc {
			testutil.Need(t, "ssh")
			port, err := testhost.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			p := strconv.Itoa(port)
			return tc{"nothing listens, real ssh", "root@127.0.0.1", "port " + p + ": Connection refused", []string{"-p", p, "opc@127.0.0.1"}, nil}
		},
	}
	for _, mk := range cases {
		tc := mk(t)
		t.Run(tc.name, func(t *testing.T) {
			evs, stall, _ := waitStall(t, Options{
				Argv:         append([]string{bin, "--flake", ".#vps-arm", "--phases", "disko,install,reboot"}, tc.argv...),
				Env:          standinEnv(tc.env...),
				LogPath:      filepath.Join(t.TempDir(), "run.log"),
				Phases:       []steps.PhaseID{steps.PhaseConnect, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseReboot},
				Stall:        map[steps.PhaseID]time.Duration{steps.PhaseConnect: limit},
				DefaultStall: time.Minute,
				Login:        tc.login,
			})
			if stall.Phase != steps.PhaseConnect || stall.Loop != steps.LoopSSHCopyID || stall.Stall < limit {
				t.Fatalf("stall %+v, want ssh-copy-id's loop in connect after at least %s", stall, limit)
			}
			for _, w := range []string{"ssh-copy-id cannot log in to " + tc.login + " after 4", tc.why} {
				if !strings.Contains(stall.Text, w) {
					t.Errorf("stall text %q does not say %q", stall.Text, w)
				}
			}
			tries := 0
			for _, e := range evs {
				if e.Type == steps.EventLine && strings.Contains(e.Text, "ssh-copy-id: INFO: attempting to log in") {
					tries++
				}
			}
			if tries < 2 {
				t.Errorf("%d tries of ssh-copy-id before the stall, want at least 2: the loop prints every 3 s", tries)
			}
		})
	}
}

// nix draws its status line with '\r' and never ends it: each state goes
// out as a progress event, in order, with its figures, and a build phase
// that only drew it is not "skipped".
func TestRunProgressEvents(t *testing.T) {
	bin := standin(t)
	c := newCollector()
	res, err := Run(context.Background(), Options{
		Argv:          []string{bin, "--flake", ".#vps-arm", "--build-on", "local", "opc@192.0.2.7"},
		Env:           standinEnv("STANDIN_PROGRESS_FRAMES=6", "STANDIN_PROGRESS_EVERY=80ms"),
		LogPath:       filepath.Join(t.TempDir(), "run.log"),
		Phases:        allPhases,
		ProgressEvery: 10 * time.Millisecond,
	}, c.sink)
	if err != nil || res.Outcome != steps.OutcomeSuccess {
		t.Fatalf("result %+v, %v", res, err)
	}
	evs := c.all()
	var build, install []steps.Event
	for _, e := range evs {
		if e.Type != steps.EventProgress {
			continue
		}
		switch e.Phase {
		case steps.PhaseBuild:
			build = append(build, e)
		case steps.PhaseInstall:
			install = append(install, e)
		}
	}
	t.Run("build", func(t *testing.T) {
		if len(build) < 5 {
			t.Fatalf("%d progress events in the build, want one per state (7)", len(build))
		}
		if build[0].Text != "[0/3 built]" {
			t.Errorf("first state %q, want [0/3 built]", build[0].Text)
		}
		last := build[len(build)-1]
		want := steps.Progress{HasBuilds: true, Built: 3, HasCopies: true, Copied: 5, HasMiB: true, MiB: 40.1}
		if last.Text != "[3 built, 5 copied (40.1 MiB)]" || last.Progress == nil || *last.Progress != want {
			t.Errorf("last state %q %+v, want [3 built, 5 copied (40.1 MiB)] %+v", last.Text, last.Progress, want)
		}
		for i := 1; i < len(build); i++ {
			a, b := build[i-1].Progress, build[i].Progress
			if a == nil || b == nil || b.Built < a.Built || b.MiB < a.MiB || !build[i].Time.After(build[i-1].Time) {
				t.Errorf("state %d %q does not follow %q", i, build[i].Text, build[i-1].Text)
			}
		}
		var states []steps.PhaseState
		for _, e := range evs {
			if e.Type == steps.EventPhase && e.Phase == steps.PhaseBuild {
				states = append(states, e.State)
			}
		}
		if strings.Join(toStrings(states), ",") != "pending,running,done" {
			t.Errorf("build phase states %v, want pending,running,done", states)
		}
		connect := firstEvent(evs, func(e steps.Event) bool {
			return e.Type == steps.EventPhase && e.Phase == steps.PhaseConnect && e.State == steps.StateRunning
		})
		lastBuild := firstEvent(evs, func(e steps.Event) bool { return e.Type == steps.EventProgress && e.Text == last.Text })
		if connect < lastBuild {
			t.Errorf("connect started (event %d) before the build's last state (event %d)", connect, lastBuild)
		}
	})
	t.Run("closure copy", func(t *testing.T) {
		if len(install) < 5 {
			t.Fatalf("%d progress events in the install, want one per state", len(install))
		}
		last := install[len(install)-1].Progress
		if last == nil || !last.HasCopies || last.Copied != 12 || last.Copies != 12 || last.MiB != 40.1 {
			t.Errorf("last copy state %+v, want 12/12 copied, 40.1 MiB", last)
		}
	})
	t.Run("no status line in the lines", func(t *testing.T) {
		for _, e := range evs {
			if e.Type == steps.EventLine && (strings.Contains(e.Text, " built") || strings.Contains(e.Text, " copied (")) {
				t.Errorf("line event %q holds nix's status line", e.Text)
			}
		}
	})
}

// A status line redrawn faster than ProgressEvery goes out at most that
// often, and its last state still goes out.
func TestRunProgressThrottled(t *testing.T) {
	bin := standin(t)
	c := newCollector()
	const frames, every = 40, 10 * time.Millisecond
	res, err := Run(context.Background(), Options{
		Argv:    []string{bin, "--flake", ".#vps-arm", "--build-on", "local", "opc@192.0.2.7"},
		Env:     standinEnv("STANDIN_PROGRESS_FRAMES=40", "STANDIN_PROGRESS_EVERY=10ms"),
		LogPath: filepath.Join(t.TempDir(), "run.log"),
		Phases:  allPhases,
	}, c.sink)
	if err != nil || res.Outcome != steps.OutcomeSuccess {
		t.Fatalf("result %+v, %v", res, err)
	}
	var build []steps.Event
	for _, e := range c.all() {
		if e.Type == steps.EventProgress && e.Phase == steps.PhaseBuild {
			build = append(build, e)
		}
	}
	// The frames take 400 ms at least: two events a 200 ms period, and the
	// first and the last.
	if len(build) < 2 {
		t.Fatalf("%d progress events for %d states, want the first, the last and one every %s between", len(build), frames+1, DefaultProgressEvery)
	}
	span := build[len(build)-1].Time.Sub(build[0].Time)
	if span < frames*every {
		t.Fatalf("the states took %s, want at least %s", span, frames*every)
	}
	if most := int(span/DefaultProgressEvery) + 2; len(build) > most {
		t.Errorf("%d progress events in %s, want at most %d", len(build), span, most)
	}
	for i := 1; i < len(build); i++ {
		if gap := build[i].Time.Sub(build[i-1].Time); gap < DefaultProgressEvery && i != len(build)-1 {
			t.Errorf("events %d and %d are %s apart, want at least %s", i-1, i, gap, DefaultProgressEvery)
		}
	}
	if last := build[len(build)-1].Text; last != "[3 built, 5 copied (40.1 MiB)]" {
		t.Errorf("last state sent %q, want the final one", last)
	}
}

func toStrings[T ~string](v []T) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = string(x)
	}
	return out
}
