package runner

import (
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

func TestHoldVerdict(t *testing.T) {
	result := steps.Event{Type: steps.EventResult, Outcome: steps.OutcomeSuccess}
	rebootDone := steps.Event{Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateDone}
	rebootRunning := steps.Event{Type: steps.EventPhase, Phase: steps.PhaseReboot, State: steps.StateRunning}
	diskoDone := steps.Event{Type: steps.EventPhase, Phase: steps.PhaseDisko, State: steps.StateDone}
	line := steps.Event{Type: steps.EventLine, Phase: steps.PhaseReboot, Text: "waiting"}
	for _, tc := range []struct {
		name       string
		in         []steps.Event
		passed     int
		wantResult steps.Outcome
	}{
		{"the result and reboot done are held", []steps.Event{diskoDone, rebootRunning, line, rebootDone, result}, 3, steps.OutcomeSuccess},
		{"no result: an empty one", []steps.Event{diskoDone}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []steps.Event
			v := HoldVerdict(func(e steps.Event) { got = append(got, e) })
			for _, e := range tc.in {
				v.Emit(e)
			}
			if len(got) != tc.passed {
				t.Fatalf("passed on %d events, want %d: %+v", len(got), tc.passed, got)
			}
			for _, e := range got {
				if e.Type == steps.EventResult || e == rebootDone {
					t.Errorf("passed on %+v", e)
				}
			}
			if r := v.Result(); r.Type != steps.EventResult || r.Outcome != tc.wantResult {
				t.Errorf("Result() = %+v, want a result with outcome %q", r, tc.wantResult)
			}
			v.Release()
			released := len(got) - tc.passed
			if want := map[bool]int{true: 1, false: 0}[tc.wantResult != ""]; released != want {
				t.Errorf("Release passed on %d events, want %d", released, want)
			}
		})
	}
}
