package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps/transcript"
)

// explainAgrees checks that `bigbang explain` on the transcript of a run
// gives the live result's outcome and failed phase: bigbang's own lines
// at its end (the exit status, the verification) carry what the output of
// nixos-anywhere alone cannot.
func explainAgrees(t *testing.T, log string, live e2eEvent) {
	t.Helper()
	rep, err := transcript.ExplainFile(log, nil)
	if err != nil {
		t.Fatalf("explain %s: %v", log, err)
	}
	want := map[string]string{"success": "success", "failed": "failed", "aborted": "incomplete"}[live.Outcome]
	if string(rep.Outcome) != want || (live.Outcome == "failed" && string(rep.FailedPhase) != live.FailedPhase) {
		t.Errorf("explain says %s in %q, the live run ended %s in %q (diagnosis %s)\n%s", rep.Outcome, rep.FailedPhase,
			live.Outcome, live.FailedPhase, rep.Diagnosis.ID, readFile(t, log))
	}
}

// TestRealToolBehaviour drives bigbang against the stand-in as
// nixos-anywhere 1.13.0 behaves after the wipe: loops that print while they
// hang, a reboot that never happens, the machine in each state a resume
// meets. Every run's transcript is explained the way the live run ended.
func TestRealToolBehaviour(t *testing.T) {
	x := newE2E(t)
	needVPS(t)

	t.Run("the reboot never happens: failed in reboot within the timeout", func(t *testing.T) {
		r := x.newRun(t)
		t.Setenv("STANDIN_REBOOT", "never")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		start := time.Now()
		code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json", "--reboot-timeout", "4s")...)
		took := time.Since(start)
		if code != cli.Failed {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
		}
		evs := parseJSONLines[e2eEvent](t, stdout)
		res := evs[len(evs)-1]
		if res.Type != "result" || res.FailedPhase != "reboot" || res.Diagnosis.ID != "reboot.never" ||
			!strings.Contains(res.Diagnosis.Remedy, "console") {
			t.Fatalf("result %+v, want failed in reboot: the reboot never happened, with the console as remedy", res)
		}
		// From the Rebooting step: the timeout, plus the stop of the child.
		var rebooting time.Time
		for _, e := range evs {
			if e.Type == "phase" && e.Phase == "reboot" && e.State == "running" {
				rebooting = e.Time
			}
		}
		if ended := res.Time.Sub(rebooting); rebooting.IsZero() || ended > 4*time.Second+8*time.Second {
			t.Errorf("the failure came %s after the reboot started (run took %s), want the 4s timeout and a few seconds", ended, took)
		}
		explainAgrees(t, r.log, res)
	})

	t.Run("ssh-copy-id cannot log in: the stall names the loop", func(t *testing.T) {
		r := x.newRun(t)
		t.Setenv("STANDIN_CONNECT", "refused")
		t.Setenv("STANDIN_CONNECT_TRIES", "")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out lockedBuffer
		done := make(chan int, 1)
		go func() {
			code, _ := runRootTo(ctx, "", &out, x.args(r, "--output", "json", "--stall", "3s")...)
			done <- code
		}()
		deadline := time.Now().Add(45 * time.Second)
		for !strings.Contains(out.String(), `"type":"stall"`) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		<-done
		var stall e2eEvent
		for _, e := range parseJSONLines[e2eEvent](t, out.String()) {
			if e.Type == "stall" {
				stall = e
				break
			}
		}
		if stall.Phase != "connect" || !strings.Contains(stall.Text, "ssh-copy-id cannot log in") {
			t.Fatalf("stall %+v, want the connect phase's ssh-copy-id loop named\n%s", stall, out.String())
		}
	})

	t.Run("a reboot check resumed against the installed system only verifies", func(t *testing.T) {
		r := x.newRun(t)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json")...); code != cli.OK {
			t.Fatalf("install: exit %d\n%s\n%s", code, stdout, stderr)
		}
		before := readFile(t, r.log)
		// As the resume command of a failed reboot check says it.
		code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json", "--phases", "reboot", "--skip-preflight", "--reboot-port", x.h.PortString())...)
		if code != cli.OK {
			t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
		}
		after := strings.TrimPrefix(readFile(t, r.log), before)
		if !strings.Contains(after, "verifying the new system only") || strings.Contains(after, "###") {
			t.Errorf("the resume ran more than the verification:\n%s", after)
		}
		if !strings.Contains(stderr, "runs the installed system") {
			t.Errorf("the resume did not say what state the machine is in:\n%s", stderr)
		}
		evs := parseJSONLines[e2eEvent](t, stdout)
		explainAgrees(t, r.log, evs[len(evs)-1])
	})

	t.Run("a resume refuses a machine that is down, or one kexec never reached", func(t *testing.T) {
		r := x.newRun(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// The test host runs its old system (no installer): kexec did not
		// happen, nothing was wiped.
		code, _, stderr := runRoot(ctx, "", x.args(r, "--output", "json", "--phases", "disko,install,reboot", "--skip-preflight")...)
		if code != cli.Failed || !strings.Contains(stderr, "still runs its old system") {
			t.Errorf("resume against the old system: exit %d\n%s", code, stderr)
		}
		if _, err := os.Stat(r.copy); err == nil {
			t.Error("nixos-anywhere ran against the old system")
		}
	})
}

// TestResumeMachineStates covers the resume against the NixOS installer
// (it runs, as root) and against a machine that is down (refused, quickly,
// instead of ssh-copy-id's endless retries).
func TestResumeMachineStates(t *testing.T) {
	x := newE2EWith(t, testhost.Options{User: "root", Installer: true, WatchRebootRequests: true})
	needVPS(t)
	h := x.h
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	r := x.newRun(t)
	code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json", "--phases", "disko,install,reboot", "--skip-preflight",
		"--reboot-port", h.PortString())...)
	if code != cli.OK || !strings.Contains(stderr, "runs the NixOS installer") {
		t.Fatalf("resume against the installer: exit %d\n%s\n%s", code, stdout, stderr)
	}
	evs := parseJSONLines[e2eEvent](t, stdout)
	explainAgrees(t, r.log, evs[len(evs)-1])

	h.Stop()
	r = x.newRun(t)
	start := time.Now()
	code, _, stderr = runRoot(ctx, "", x.args(r, "--output", "json", "--phases", "disko,install,reboot", "--skip-preflight")...)
	if code != cli.Failed || !strings.Contains(stderr, "does not answer on SSH") || time.Since(start) > 40*time.Second {
		t.Errorf("resume against a machine that is down: exit %d after %s\n%s", code, time.Since(start), stderr)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInstallIPv6 installs onto an IPv6 literal: OpenSSH's ssh and
// ssh-copy-id get `root@::1` with -p (they cannot resolve `[::1]`), Go's
// dialer and known_hosts get `[::1]:port`, and the reboot is verified.
func TestInstallIPv6(t *testing.T) {
	x := newE2EWith(t, testhost.Options{User: "root", WatchRebootRequests: true, IPv6: true})
	needVPS(t)
	r := x.newRun(t)
	x.h.WriteKnownHosts(r.knownHosts)
	if err := os.WriteFile(r.knownHosts, []byte(strings.ReplaceAll(readFile(t, r.knownHosts), "[127.0.0.1]", "[::1]")), 0o600); err != nil {
		t.Fatal(err)
	}
	args := x.args(r, "--output", "json")
	for i, a := range args {
		if a == x.h.IP {
			args[i] = "::1"
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	code, stdout, stderr := runRoot(ctx, "", args...)
	if code != cli.OK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The stand-in, like OpenSSH, fails on root@[::1]: the install
	// getting through is the proof that the argv said root@::1.
	if kh := readFile(t, r.knownHosts); !strings.Contains(kh, "[::1]:"+x.h.PortString()+" ") {
		t.Errorf("the new host key is not pinned for [::1]:%s:\n%s", x.h.PortString(), kh)
	}
	evs := parseJSONLines[e2eEvent](t, stdout)
	explainAgrees(t, r.log, evs[len(evs)-1])
}

// TestInstallProgress: nix draws its build progress with carriage returns
// and never ends the line; the JSON output carries it as progress events of
// the install phase, in order, and the plain output shows it as it goes.
func TestInstallProgress(t *testing.T) {
	x := newE2E(t)
	needVPS(t)
	t.Setenv("STANDIN_PROGRESS_FRAMES", "30")
	t.Setenv("STANDIN_PROGRESS_EVERY", "100ms")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	r := x.newRun(t)
	code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json")...)
	if code != cli.OK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var texts []string
	for _, e := range parseJSONLines[e2eEvent](t, stdout) {
		if e.Type == "progress" && e.Phase == "install" {
			texts = append(texts, e.Text)
		}
	}
	if len(texts) < 3 {
		t.Fatalf("%d progress events in the install phase, want the build's status line as it changes:\n%s", len(texts), stdout)
	}
	if !strings.Contains(texts[len(texts)-1], "built") {
		t.Errorf("the last progress %q is not nix's status line", texts[len(texts)-1])
	}

	r = x.newRun(t)
	code, stdout, stderr = runRoot(ctx, "", x.args(r, "--output", "plain")...)
	if code != cli.OK || !strings.Contains(stdout, "[progress]") {
		t.Errorf("plain output: exit %d, no progress shown:\n%s\n%s", code, stdout, stderr)
	}
}

// TestInstallOptions: the options an Oracle first-timer reaches for are
// flags bigbang checks, plans and passes: the hardware configuration is
// generated into the flake's folder (its step shows in the kexec phase, the
// result says to commit it), the disk key is uploaded before disko, and the
// receipt records the exact command.
func TestInstallOptions(t *testing.T) {
	x := newE2E(t)
	needVPS(t)
	r := x.newRun(t)
	hw := filepath.Join(x.flakeDir, "facter.json")
	key := filepath.Join(t.TempDir(), "disk.key")
	if err := os.WriteFile(key, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	code, stdout, stderr := runRoot(ctx, "", x.args(r, "--output", "json", "--generate-hardware-config", "nixos-facter",
		"--hardware-config-path", hw, "--disk-encryption-keys", "/tmp/disk.key="+key, "--print-build-logs", "--no-substitute-on-destination",
		"--", "--show-trace")...)
	if code != cli.OK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(hw); err != nil {
		t.Errorf("no hardware configuration written: %v", err)
	}
	var kexecLine, diskoLine bool
	for _, e := range parseJSONLines[e2eEvent](t, stdout) {
		kexecLine = kexecLine || e.Type == "line" && e.Phase == "kexec" && strings.Contains(e.Text, "Generating facter.json")
		diskoLine = diskoLine || e.Type == "line" && e.Phase == "disko" && strings.Contains(e.Text, "Uploading "+key+" to /tmp/disk.key")
	}
	if !kexecLine || !diskoLine {
		t.Errorf("step lines: hardware config in kexec %v, disk key in disko %v\n%s", kexecLine, diskoLine, stdout)
	}
	if !strings.Contains(stderr, "hardware configuration to "+hw) {
		t.Errorf("the end does not say to commit the hardware configuration:\n%s", stderr)
	}
	rec := readFile(t, filepath.Join(r.state, "bigbang", "hosts", fmt.Sprintf("%s@%d.json", x.h.IP, x.h.Port)))
	if !strings.Contains(rec, `"--generate-hardware-config"`) || !strings.Contains(rec, `"--show-trace"`) ||
		!strings.Contains(rec, `"--print-build-logs"`) || !strings.Contains(rec, `"--no-substitute-on-destination"`) {
		t.Errorf("the receipt does not record the command:\n%s", rec)
	}
}
