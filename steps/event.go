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

	// phase, line, stall
	Phase PhaseID
	State PhaseState // phase
	Text  string     // line
	Stall time.Duration

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
	case EventStall:
		m["phase"] = e.Phase
		m["seconds"] = int(e.Stall / time.Second)
	case EventResult:
		m["outcome"] = e.Outcome
		m["failed_phase"] = e.FailedPhase
		d := Diagnosis{}
		if e.Diagnosis != nil {
			d = *e.Diagnosis
		}
		m["diagnosis"] = d
		m["log"] = e.Log
		m["exit_code"] = e.ExitCode
		if e.Resume != "" {
			m["resume"] = e.Resume
		}
	}
	return json.Marshal(m)
}
