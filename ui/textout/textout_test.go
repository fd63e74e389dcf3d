package textout

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

var t0 = time.Date(2026, 6, 6, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func phase(s float64, p steps.PhaseID, st steps.PhaseState) steps.Event {
	return steps.Event{Time: at(s), Type: steps.EventPhase, Phase: p, State: st}
}

func line(s float64, p steps.PhaseID, text string) steps.Event {
	return steps.Event{Time: at(s), Type: steps.EventLine, Phase: p, Text: text}
}

func prog(s float64, p steps.PhaseID, text string) steps.Event {
	return steps.Event{Time: at(s), Type: steps.EventProgress, Phase: p, Text: text}
}

// A failed run at disko, as the runner sends it.
var failedRun = []steps.Event{
	phase(0, steps.PhaseConnect, steps.StatePending),
	phase(0, steps.PhaseDisko, steps.StatePending),
	phase(0.1, steps.PhaseConnect, steps.StateRunning),
	line(0.1, steps.PhaseConnect, "### Uploading install SSH keys ###"),
	line(0.2, steps.PhaseConnect, ""),
	phase(3.2, steps.PhaseConnect, steps.StateDone),
	phase(3.2, steps.PhaseDisko, steps.StateRunning),
	line(3.2, steps.PhaseDisko, "### Formatting hard drive with disko ###"),
	{Time: at(125.2), Type: steps.EventStall, Phase: steps.PhaseDisko, Stall: 2 * time.Minute},
	line(130, steps.PhaseDisko, "Could not create partition 2 from 1050624 to 104857566"),
	phase(130, steps.PhaseDisko, steps.StateFailed),
	{Time: at(130), Type: steps.EventResult, Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko, ExitCode: 1,
		Diagnosis: &steps.Diagnosis{ID: "disko.partition", Summary: "disko could not create a partition", Remedy: "check the disk size against disko.nix"},
		Log:       "/state/bigbang/logs/h.log"},
}

const failedPlain = `==> Connect
    ### Uploading install SSH keys ###

<== Connect done in 3.1s
==> Disko
    ### Formatting hard drive with disko ###
!!! Disko: no output for 2m; still waiting (Ctrl-C stops the install)
    Could not create partition 2 from 1050624 to 104857566
<== Disko FAILED in 2m7s

Install FAILED after 2m10s in phase Disko (exit status 1).
  What happened: disko could not create a partition
  What to do:    check the disk size against disko.nix
  The server:    The disk is being wiped or already is: the old system is gone. The NixOS installer runs in RAM and is reachable as root.
  Safe now:      Resuming while the installer runs. Do not reboot: with the disk wiped, a reboot leaves a server that does not boot.
  Then:          Resume with the command below while the installer still runs. If the server was rebooted, start the installer again (run bigbang with all phases) or use the serial console (on Oracle Cloud: the instance's page → Resources → Console connection opens the serial console; Reboot is on the same page).
  Transcript:    /state/bigbang/logs/h.log
`

func TestPlain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []steps.Event
		want   string
	}{
		{"failed at disko", failedRun, failedPlain},
		{"install continues around the key copy", []steps.Event{
			phase(0, steps.PhaseInstall, steps.StateRunning),
			line(0, steps.PhaseInstall, "### Uploading the system closure ###"),
			phase(1, steps.PhaseKeys, steps.StateRunning),
			line(1, steps.PhaseKeys, "### Copying extra files ###"),
			phase(2, steps.PhaseKeys, steps.StateDone),
			line(2, steps.PhaseInstall, "### Installing NixOS ###"),
			phase(12, steps.PhaseInstall, steps.StateDone),
			phase(12, steps.PhaseBuild, steps.StateSkipped),
			{Time: at(12), Type: steps.EventResult, Outcome: steps.OutcomeSuccess, Log: "/l"},
		}, `==> Install
    ### Uploading the system closure ###
==> Key copy
    ### Copying extra files ###
<== Key copy done in 1s
==> Install (continued)
    ### Installing NixOS ###
<== Install done in 12s
--- Build skipped

Install finished in 12s.
  Transcript:    /l
`},
		{"reboot not verified after nixos-anywhere exited 0", []steps.Event{
			phase(0, steps.PhaseReboot, steps.StateRunning),
			phase(600, steps.PhaseReboot, steps.StateFailed),
			{Time: at(600), Type: steps.EventResult, Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseReboot, ExitCode: 0,
				Diagnosis: &steps.Diagnosis{ID: "reboot.verify", Summary: "203.0.113.7 did not come back within 10m0s", Remedy: "open the serial console"}, Log: "/l"},
		}, `==> Reboot
<== Reboot FAILED in 10m

Install FAILED after 10m in phase Reboot: nixos-anywhere finished, but the new system could not be verified.
  What happened: 203.0.113.7 did not come back within 10m0s
  What to do:    open the serial console
  The server:    The new system is on the disk; the server is rebooting into it (or has).
  Safe now:      Waiting, and logging in once it answers; nothing is wiped again.
  Then:          Wait a few minutes, then bigbang status checks it; if it does not come back, the serial console shows the boot (on Oracle Cloud: the instance's page → Resources → Console connection opens the serial console; Reboot is on the same page).
  Transcript:    /l
`},
		{"failed with exit status 0 elsewhere", []steps.Event{
			phase(0, steps.PhaseInstall, steps.StateRunning),
			{Time: at(5), Type: steps.EventResult, Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseInstall, Log: "/l"},
		}, `==> Install

Install FAILED after 5s in phase Install.
  The server:    The disk is wiped and formatted; the new system is partly installed. The NixOS installer runs in RAM and is reachable as root.
  Safe now:      Resuming while the installer runs. Do not reboot: the new system is not complete.
  Then:          Resume with the command below while the installer still runs; if the server was rebooted, run bigbang again with all phases.
  Transcript:    /l
`},
		{"progress at most every 5 s per phase, the last before the phase ends", []steps.Event{
			phase(0, steps.PhaseBuild, steps.StateRunning),
			// The first state prints; [1/7] and [2/7] come within 5 s and
			// are held back, and the line at 5.2 s is still too early to
			// print them; at 6 s the newest state prints; the same state
			// again prints nothing; [6/7] is held back, then printed as
			// the last before the phase ends.
			prog(0.5, steps.PhaseBuild, "[0/7 built] building a"),
			prog(1.0, steps.PhaseBuild, "[1/7 built] building b"),
			prog(4.0, steps.PhaseBuild, "[2/7 built] building c"),
			line(5.2, steps.PhaseBuild, "building '/nix/store/d.drv'..."),
			prog(6.0, steps.PhaseBuild, "[3/7 built] building d"),
			prog(9.0, steps.PhaseBuild, "[3/7 built] building d"),
			prog(10.3, steps.PhaseBuild, "[4/7 built] building e"),
			prog(11.0, steps.PhaseBuild, "[6/7 built] building g"),
			phase(12, steps.PhaseBuild, steps.StateDone),
			phase(12, steps.PhaseInstall, steps.StateRunning),
			prog(13, steps.PhaseInstall, "[7/7 built, 1 copied (1.0/9.0 MiB)]"),
			prog(14, steps.PhaseInstall, "[7/7 built, 5 copied (9.0/9.0 MiB)]"),
			{Time: at(15), Type: steps.EventResult, Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseInstall, ExitCode: 1, Log: "/l"},
		}, `==> Build
    [progress] [0/7 built] building a
    building '/nix/store/d.drv'...
    [progress] [3/7 built] building d
    [progress] [6/7 built] building g
<== Build done in 12s
==> Install
    [progress] [7/7 built, 1 copied (1.0/9.0 MiB)]
    [progress] [7/7 built, 5 copied (9.0/9.0 MiB)]

Install FAILED after 15s in phase Install (exit status 1).
  The server:    The disk is wiped and formatted; the new system is partly installed. The NixOS installer runs in RAM and is reachable as root.
  Safe now:      Resuming while the installer runs. Do not reboot: the new system is not complete.
  Then:          Resume with the command below while the installer still runs; if the server was rebooted, run bigbang again with all phases.
  Transcript:    /l
`},
		{"a stall in the runner's words; noise printed as any line", []steps.Event{
			phase(0, steps.PhaseReboot, steps.StateRunning),
			{Time: at(1), Type: steps.EventLine, Phase: steps.PhaseReboot, Noise: true, Text: "Warning: Permanently added '203.0.113.7' (ED25519) to the list of known hosts."},
			{Time: at(121), Type: steps.EventStall, Phase: steps.PhaseReboot, Stall: 2 * time.Minute, Loop: steps.LoopRebootWait,
				Text: "the machine has not gone down for the reboot after 2m0s: nixos-anywhere can still log in to it, so the reboot has not happened"},
			{Time: at(241), Type: steps.EventStall, Phase: steps.PhaseReboot, Stall: 4 * time.Minute, Text: "Reboot: no output for 4m0s"},
		}, `==> Reboot
    Warning: Permanently added '203.0.113.7' (ED25519) to the list of known hosts.
!!! Reboot: the machine has not gone down for the reboot after 2m0s: nixos-anywhere can still log in to it, so the reboot has not happened; still waiting (Ctrl-C stops the install)
!!! Reboot: no output for 4m0s; still waiting (Ctrl-C stops the install)
`},
		{"interrupted", []steps.Event{
			phase(0, steps.PhaseKexec, steps.StateRunning),
			{Time: at(61), Type: steps.EventResult, Outcome: steps.OutcomeAborted, FailedPhase: steps.PhaseKexec, ExitCode: 130, Log: "/l"},
		}, `==> Kexec

Install interrupted after 1m1s in phase Kexec.
  The server:    The disk is untouched. The server is switching into the NixOS installer in RAM; the old system may already be gone from memory.
  Safe now:      Rebooting the server: a reboot from the provider's console brings the old system back from the untouched disk.
  Then:          Reboot it from the provider's console (on Oracle Cloud: the instance's page → Resources → Console connection opens the serial console; Reboot is on the same page) and run bigbang again; or, if the installer answers on ssh as root, resume from the disko phase.
  Transcript:    /l
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			sink := Plain(&b)
			for _, e := range tc.events {
				sink(e)
			}
			if b.String() != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	sink := JSON(&b)
	for _, e := range failedRun {
		sink(e)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(failedRun) {
		t.Fatalf("%d lines for %d events", len(lines), len(failedRun))
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d not JSON: %v: %s", i, err, l)
		}
		if m["type"] != string(failedRun[i].Type) {
			t.Fatalf("line %d type %v, want %s", i, m["type"], failedRun[i].Type)
		}
	}
	var res struct {
		Outcome     string
		FailedPhase string `json:"failed_phase"`
		Diagnosis   steps.Diagnosis
		Log         string
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.Outcome != "failed" || res.FailedPhase != "disko" || res.Diagnosis.ID != "disko.partition" || res.Log == "" {
		t.Fatalf("result line %s → %+v %v", lines[len(lines)-1], res, err)
	}
}

// TestJSONNewFields: the JSON lines carry a line's noise flag, a stall's
// loop and words, and a progress event's text and figures.
func TestJSONNewFields(t *testing.T) {
	var b bytes.Buffer
	sink := JSON(&b)
	sink(steps.Event{Time: t0, Type: steps.EventLine, Phase: steps.PhaseConnect, Text: "Connection to 203.0.113.7 closed.", Noise: true})
	sink(steps.Event{Time: t0, Type: steps.EventStall, Phase: steps.PhaseConnect, Stall: 2 * time.Minute, Loop: steps.LoopSSHCopyID, Text: "ssh-copy-id cannot log in"})
	sink(steps.Event{Time: t0, Type: steps.EventProgress, Phase: steps.PhaseBuild, Text: "[3/7 built, 12 copied (40.1/120.0 MiB)]",
		Progress: &steps.Progress{Built: 3, Builds: 7, Copied: 12, MiB: 40.1, MiBTotal: 120, HasBuilds: true, HasCopies: true, HasMiB: true}})
	want := []string{
		`"noise":true`,
		`"loop":"ssh-copy-id"`, `"seconds":120`, `"text":"ssh-copy-id cannot log in"`,
		`"type":"progress"`, `"progress":{"builds":7,"built":3,"copied":12,"copies":0,"mib":40.1,"mib_total":120}`,
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("the JSON lacks %s:\n%s", w, b.String())
		}
	}
}

// syncBuffer is a buffer that the timed flush may write from its own
// goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLinesAreFlushedWithoutFurtherEvents(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(w *syncBuffer) steps.Sink
	}{
		{"plain", func(w *syncBuffer) steps.Sink { return Plain(w) }},
		{"json", func(w *syncBuffer) steps.Sink { return JSON(w) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w syncBuffer
			sink := tc.mk(&w)
			sink(line(0, steps.PhaseDisko, "a lonely line"))
			if strings.Contains(w.String(), "lonely") {
				t.Log("written at once (allowed, but not expected)")
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(w.String(), "a lonely line") {
				if time.Now().After(deadline) {
					t.Fatal("a buffered line was never written")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {1234 * time.Millisecond, "1.2s"}, {12 * time.Second, "12s"},
		{2 * time.Minute, "2m"}, {127400 * time.Millisecond, "2m7s"}, {-time.Second, "0s"},
	} {
		if got := FormatDuration(tc.d); got != tc.want {
			t.Errorf("FormatDuration(%s) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

// TestResume: with the result's Resume, a failed run ends with the command
// that resumes it, as "Resume with:" in plain and "resume" in JSON; a
// success has none.
func TestResume(t *testing.T) {
	const cmd = "bigbang install --host 203.0.113.7 --phases disko,install,keys,reboot --skip-preflight --yes-wipe 203.0.113.7"
	withResume := func(evs []steps.Event) []steps.Event {
		out := append([]steps.Event(nil), evs...)
		for i := range out {
			if out[i].Type == steps.EventResult && out[i].Outcome != steps.OutcomeSuccess {
				out[i].Resume = cmd
			}
		}
		return out
	}
	success := []steps.Event{{Time: at(1), Type: steps.EventResult, Outcome: steps.OutcomeSuccess, Log: "/l"}}
	for _, tc := range []struct {
		name   string
		events []steps.Event
		want   bool
	}{
		{"failed", withResume(failedRun), true},
		{"success", withResume(success), false},
	} {
		t.Run(tc.name+"/plain", func(t *testing.T) {
			var b bytes.Buffer
			sink := Plain(&b)
			for _, e := range tc.events {
				sink(e)
			}
			got := strings.HasSuffix(b.String(), "  Resume with:   "+cmd+"\n")
			if got != tc.want || strings.Contains(b.String(), "Resume with:") != tc.want {
				t.Errorf("resume line shown: %v, want %v:\n%s", got, tc.want, b.String())
			}
		})
		t.Run(tc.name+"/json", func(t *testing.T) {
			var b bytes.Buffer
			sink := JSON(&b)
			for _, e := range tc.events {
				sink(e)
			}
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			var res map[string]any
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
				t.Fatal(err)
			}
			r, has := res["resume"]
			if has != tc.want || tc.want && r != cmd {
				t.Errorf("resume field %v (present %v), want present %v", r, has, tc.want)
			}
			if res["type"] != "result" || res["log"] == "" || res["outcome"] == nil {
				t.Errorf("the result lost its fields: %v", res)
			}
			if strings.Count(b.String(), `"resume"`) > 1 {
				t.Error("resume on more than the result")
			}
		})
	}
}

func TestCheckSummary(t *testing.T) {
	var buf bytes.Buffer
	CheckSummary(&buf, []steps.Check{
		{ID: "remote.os", Status: steps.StatusOK, Summary: "Linux"},
		{ID: "remote.ram", Status: steps.StatusFail, Summary: "0.5 GiB RAM", Fix: "bigger shape"},
		{ID: "remote.uefi", Status: steps.StatusSkip, Summary: "not compared"},
	})
	want := "✔ remote.os    Linux\n✘ remote.ram   0.5 GiB RAM\n               fix: bigger shape\n– remote.uefi  not compared\n\n1 problem blocks the install: fix it and run bigbang check again.\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// TestMachineEveryPhase: every phase has its words, and the ones that
// leave a running installer or a rescue path say so.
func TestMachineEveryPhase(t *testing.T) {
	for _, id := range steps.PhaseOrder {
		m := Machine(id)
		if m.State == "" || m.Safe == "" || m.Do == "" || m.Stall == "" || m == Machine("") {
			t.Errorf("phase %s has no words of its own: %+v", id, m)
		}
	}
	if s := Machine(steps.PhaseKexec); !strings.Contains(s.State, "disk is untouched") || !strings.Contains(s.Do, "Console connection") {
		t.Errorf("kexec does not say the disk is untouched and how to reboot: %+v", s)
	}
	if s := Machine(steps.PhaseDisko); !strings.Contains(s.State, "wiped") || !strings.Contains(s.State, "root") || !strings.Contains(s.Safe, "Do not reboot") {
		t.Errorf("disko does not say wiped, installer as root, do not reboot: %+v", s)
	}
	if s := Machine(steps.PhaseReboot); !strings.Contains(s.State, "on the disk") || !strings.Contains(s.Stall, "go down") {
		t.Errorf("reboot does not say installed and that it waits for the server to go down: %+v", s)
	}
}

// TestCommandLines: a long command breaks only between words, every line
// but the last ends in " \", and the lines joined again are the command.
func TestCommandLines(t *testing.T) {
	cmd := "nix run github:nix-community/nixos-anywhere/1.13.0 -- --flake '.#vps arm' --extra-files ./secrets-init/keys --build-on remote -i /home/operator/.ssh/id_ed25519_very_long_name_for_a_key --phases disko,install,reboot opc@203.0.113.7"
	for _, w := range []int{30, 60, 80} {
		lines := CommandLines(cmd, w)
		if len(lines) < 2 {
			t.Fatalf("w=%d: not wrapped: %q", w, lines)
		}
		var words []string
		for i, l := range lines {
			if i < len(lines)-1 && !strings.HasSuffix(l, " \\") {
				t.Errorf("w=%d: line %d lacks the continuation: %q", w, i, l)
			}
			if len(l) > w && strings.Count(strings.TrimSpace(strings.TrimSuffix(l, " \\")), " ") > 1 {
				t.Errorf("w=%d: line %d is %d wide with room to break: %q", w, i, len(l), l)
			}
			words = append(words, strings.TrimSpace(strings.TrimSuffix(l, " \\")))
		}
		if got := strings.Join(words, " "); got != cmd {
			t.Errorf("w=%d: the lines do not join back into the command:\n%s\nwant\n%s", w, got, cmd)
		}
		for _, l := range lines {
			if strings.Count(l, "'")%2 != 0 {
				t.Errorf("w=%d: a quoted word was cut: %q", w, l)
			}
		}
	}
	if got := CommandLines("bigbang status", 80); len(got) != 1 || got[0] != "bigbang status" {
		t.Errorf("a short command changed: %q", got)
	}
}

// TestWrapWords: text breaks at spaces only; a word wider than the line
// (a path with hyphens) stands whole on a line of its own.
func TestWrapWords(t *testing.T) {
	long := "/home/some-user/.local/state/bigbang/logs/203.0.113.7-2026-12-02.log"
	got := WrapWords("bigbang explain "+long+" then read it", 30)
	want := "bigbang explain\n" + long + "\nthen read it"
	if got != want {
		t.Errorf("WrapWords = %q, want %q", got, want)
	}
}
