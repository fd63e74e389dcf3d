package steps

import (
	"encoding/json"
	"time"
)

// EventType is the kind of an Event; the names are the JSON contract.
type EventType string

// The event types of `--output json`.
const (
	EventCheck  EventType = "check"
	EventPhase  EventType = "phase"
	EventLine   EventType = "line"
	EventStall  EventType = "stall"
	EventResult EventType = "result"
	// EventProgress carries the line a program keeps redrawing with '\r'
	// (nix's "[1/3 built, 2 copied (12.3/40.1 MiB)]"), which never ends and
	// so never becomes a line event.
	EventProgress EventType = "progress"
)

// Outcome is how an install ended.
type Outcome string

// The outcomes of a result event.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailed  Outcome = "failed"
	OutcomeAborted Outcome = "aborted"
)

// Event is one thing that happened during a run. The TUI, the plain and the
// JSON renderers all consume the same stream of events. Which fields are
// meaningful depends on Type; MarshalJSON writes only those.
type Event struct {
	Time time.Time
	Type EventType

	// check
	Check Check

	// phase, line, stall, progress
	Phase PhaseID
	State PhaseState // phase
	Text  string     // line; stall: what is stuck, in words; progress: the redrawn line
	Stall time.Duration

	// Noise marks a line that every run prints and that says nothing about
	// progress (ssh's "Warning: Permanently added …", "Pseudo-terminal will
	// not be allocated …", "Connection to … closed."): front ends may hide it
	// from pane tails; the transcript and the full log keep it.
	Noise bool // line

	// Loop names the known endless loop a stall is in (LoopRebootWait, …);
	// empty when the phase is simply silent.
	Loop string // stall

	// Progress holds the figures parsed from a progress event's text, or
	// nil when it has none.
	Progress *Progress // progress

	// result
	Outcome     Outcome
	FailedPhase PhaseID
	Diagnosis   *Diagnosis
	Log         string
	ExitCode    int
	// Resume is the exact command that resumes a failed or interrupted
	// install ("" when there is none); JSON writes it only when set.
	Resume string
}

// The loops a stall event can name (Event.Loop).
const (
	// LoopRebootWait: nixos-anywhere logs in again and again to see whether
	// the machine has gone down for the reboot, and it has not.
	LoopRebootWait = "reboot-wait"
	// LoopKexecDown: the same wait after kexec: the old system stays up.
	LoopKexecDown = "kexec-down"
	// LoopKexecUp: the wait for the NixOS installer to answer after kexec.
	LoopKexecUp = "kexec-up"
	// LoopSSHCopyID: ssh-copy-id cannot log in and is retried every 3 s.
	LoopSSHCopyID = "ssh-copy-id"
	// LoopRepeat: only lines already seen (or ssh's notices) keep coming.
	LoopRepeat = "repeat"
)

// Progress is what nix's status line says: builds done of builds
// expected, paths copied of paths expected, and MiB copied of MiB
// expected. A figure nix does not show is zero (Has* says which are there).
type Progress struct {
	Built, Builds  int     // "[1/3 built" (Builds is 0 when nix shows no total)
	Copied, Copies int     // "2/5 copied"
	MiB, MiBTotal  float64 // "(12.3/40.1 MiB)"
	HasBuilds      bool
	HasCopies      bool
	HasMiB         bool
}

// Sink receives events. Implementations must not block for long: the runner
// calls it from the goroutine that reads the child's output.
type Sink func(Event)

// MarshalJSON writes the event in the shape DESIGN.md fixes for
// `--output json`.
func (e Event) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"time": e.Time.UTC().Format(time.RFC3339Nano),
		"type": string(e.Type),
	}
	switch e.Type {
	case EventCheck:
		m["id"] = e.Check.ID
		m["status"] = e.Check.Status
		m["summary"] = e.Check.Summary
		m["fix"] = e.Check.Fix
	case EventPhase:
		m["phase"] = e.Phase
		m["state"] = e.State
	case EventLine:
		m["phase"] = e.Phase
		m["text"] = e.Text
		if e.Noise {
			m["noise"] = true
		}
	case EventStall:
		m["phase"] = e.Phase
		m["seconds"] = int(e.Stall / time.Second)
		if e.Text != "" {
			m["text"] = e.Text
		}
		if e.Loop != "" {
			m["loop"] = e.Loop
		}
	case EventProgress:
		m["phase"] = e.Phase
		m["text"] = e.Text
		if p := e.Progress; p != nil {
			f := map[string]any{}
			if p.HasBuilds {
				f["built"], f["builds"] = p.Built, p.Builds
			}
			if p.HasCopies {
				f["copied"], f["copies"] = p.Copied, p.Copies
			}
			if p.HasMiB {
				f["mib"], f["mib_total"] = p.MiB, p.MiBTotal
			}
			m["progress"] = f
		}
	case EventResult:
		m["outcome"] = e.Outcome
		m["failed_phase"] = e.FailedPhase
		// A success or an interruption has no diagnosis: the field is left
		// out rather than sent empty.
		if e.Diagnosis != nil {
			m["diagnosis"] = *e.Diagnosis
		}
		m["log"] = e.Log
		m["exit_code"] = e.ExitCode
		if e.Resume != "" {
			m["resume"] = e.Resume
		}
	}
	return json.Marshal(m)
}
