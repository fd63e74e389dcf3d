package runner

import "github.com/bigbang-nix/bigbang/steps"

// Verdict passes a run's events on to a sink but holds back the two that
// belong to the proof of the new system: the result, and the reboot
// phase's "done". nixos-anywhere ends once the machine reboots; only after
// the caller has seen the machine come back on the expected host key is
// the install done, so the caller sends those events itself.
type Verdict struct {
	sink   steps.Sink
	result *steps.Event
}

// HoldVerdict returns a Verdict that passes events on to sink.
func HoldVerdict(sink steps.Sink) *Verdict {
	return &Verdict{sink: sink}
}

// Emit is the steps.Sink to give Run.
func (v *Verdict) Emit(e steps.Event) {
	switch {
	case e.Type == steps.EventResult:
		v.result = &e
	case e.Type == steps.EventPhase && e.Phase == steps.PhaseReboot && e.State == steps.StateDone:
	default:
		v.sink(e)
	}
}

// Result is the held result event, or an empty one when the run sent none.
func (v *Verdict) Result() steps.Event {
	if v.result == nil {
		return steps.Event{Type: steps.EventResult}
	}
	return *v.result
}

// Release passes the held result on as it came, for a run whose outcome
// needs no proof (it failed, or nothing ran).
func (v *Verdict) Release() {
	if v.result != nil {
		v.sink(*v.result)
	}
}
