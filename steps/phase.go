// Package steps is the install domain: configuration, plan, runner events,
// the transcript classifier and the preflight checks. It never imports a UI
// library and reaches hosts only through interfaces it defines.
package steps

import "fmt"

// PhaseID names one phase of an install. The IDs are a contract: the UI, the
// JSON output and the tests all use them.
type PhaseID string

// The canonical phase IDs, as in DESIGN.md.
const (
	PhaseBuild   PhaseID = "build"
	PhaseConnect PhaseID = "connect"
	PhaseKexec   PhaseID = "kexec"
	PhaseDisko   PhaseID = "disko"
	PhaseKeys    PhaseID = "keys"
	PhaseInstall PhaseID = "install"
	PhaseReboot  PhaseID = "reboot"
)

// PhaseOrder is the order in which the panes are shown: the order in which
// the phases start. The keys phase runs inside nixos-anywhere's install
// phase (after the closure, before nixos-install), so it is listed after
// install, which stays running around it.
var PhaseOrder = []PhaseID{PhaseBuild, PhaseConnect, PhaseKexec, PhaseDisko, PhaseInstall, PhaseKeys, PhaseReboot}

// Title is the pane title of a phase.
func (p PhaseID) Title() string {
	switch p {
	case PhaseBuild:
		return "Build"
	case PhaseConnect:
		return "Connect"
	case PhaseKexec:
		return "Kexec"
	case PhaseDisko:
		return "Disko"
	case PhaseKeys:
		return "Key copy"
	case PhaseInstall:
		return "Install"
	case PhaseReboot:
		return "Reboot"
	}
	return string(p)
}

// Valid reports whether p is one of the canonical phase IDs.
func (p PhaseID) Valid() bool {
	for _, q := range PhaseOrder {
		if p == q {
			return true
		}
	}
	return false
}

// ParsePhase turns a user-supplied phase name into a PhaseID.
func ParsePhase(s string) (PhaseID, error) {
	p := PhaseID(s)
	if !p.Valid() {
		return "", fmt.Errorf("unknown phase %q: use one of build, connect, kexec, disko, keys, install, reboot", s)
	}
	return p, nil
}

// PhaseState is the state of one phase.
type PhaseState string

// The phase states of the JSON contract.
const (
	StatePending PhaseState = "pending"
	StateRunning PhaseState = "running"
	StateDone    PhaseState = "done"
	StateFailed  PhaseState = "failed"
	StateSkipped PhaseState = "skipped"
)
