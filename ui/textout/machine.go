package textout

import "github.com/bigbang-nix/bigbang/steps"

// MachineState is what is known of the target when an install stops or
// fails in a phase: the state it is in, what is safe, what to do, and
// what a long silence in that phase usually means.
type MachineState struct {
	// State says in one sentence what the machine is now.
	State string
	// Safe says what the operator can do without making things worse.
	Safe string
	// Do is the way back or forward, with the provider's rescue path.
	Do string
	// Stall says what a phase that prints nothing is usually doing, and
	// what to look at.
	Stall string
}

// OracleConsole is the rescue path of an Oracle Cloud instance.
const OracleConsole = "on Oracle Cloud: the instance's page → Resources → Console connection opens the serial console; Reboot is on the same page"

// machineStates is the one table of the machine's state per phase; every
// screen and text that says what state the server is in reads it.
var machineStates = map[steps.PhaseID]MachineState{
	steps.PhaseBuild: {
		State: "The server is untouched: only this machine was building.",
		Safe:  "Everything: nothing on the server has changed.",
		Do:    "Fix the build and run bigbang again.",
		Stall: "nix may be building or downloading without output; the log shows what it last did",
	},
	steps.PhaseConnect: {
		State: "The server is untouched: its old system runs; at most a temporary install key was added for the login user.",
		Safe:  "Everything: nothing on the disk has changed.",
		Do:    "Check that ssh to the server works, then run bigbang again.",
		Stall: "ssh may be waiting for the host (a firewall, a security list, a wrong port); the old system is untouched",
	},
	steps.PhaseKexec: {
		State: "The disk is untouched. The server is switching into the NixOS installer in RAM; the old system may already be gone from memory.",
		Safe:  "Rebooting the server: a reboot from the provider's console brings the old system back from the untouched disk.",
		Do:    "Reboot it from the provider's console (" + OracleConsole + ") and run bigbang again; or, if the installer answers on ssh as root, resume from the disko phase.",
		Stall: "the server is booting the installer and is unreachable for a minute or two; if it stays silent, the serial console shows whether it boots (" + OracleConsole + ")",
	},
	steps.PhaseDisko: {
		State: "The disk is being wiped or already is: the old system is gone. The NixOS installer runs in RAM and is reachable as root.",
		Safe:  "Resuming while the installer runs. Do not reboot: with the disk wiped, a reboot leaves a server that does not boot.",
		Do:    "Resume with the command below while the installer still runs. If the server was rebooted, start the installer again (run bigbang with all phases) or use the serial console (" + OracleConsole + ").",
		Stall: "disko may be waiting for a busy disk or building its tools; the disk is being wiped",
	},
	steps.PhaseKeys: {
		State: "The disk is wiped and formatted; the new system is partly installed. The NixOS installer runs in RAM and is reachable as root.",
		Safe:  "Resuming while the installer runs. Do not reboot: the new system is not complete.",
		Do:    "Resume with the command below while the installer still runs; if the server was rebooted, run bigbang again with all phases.",
		Stall: "the host keys are being copied; a copy this small should not take long: look at the log",
	},
	steps.PhaseInstall: {
		State: "The disk is wiped and formatted; the new system is partly installed. The NixOS installer runs in RAM and is reachable as root.",
		Safe:  "Resuming while the installer runs. Do not reboot: the new system is not complete.",
		Do:    "Resume with the command below while the installer still runs; if the server was rebooted, run bigbang again with all phases.",
		Stall: "a build or a copy of the system closure may be running without output; the installer in RAM is working",
	},
	steps.PhaseReboot: {
		State: "The new system is on the disk; the server is rebooting into it (or has).",
		Safe:  "Waiting, and logging in once it answers; nothing is wiped again.",
		Do:    "Wait a few minutes, then bigbang status checks it; if it does not come back, the serial console shows the boot (" + OracleConsole + ").",
		Stall: "nixos-anywhere waits for the server to go down for the reboot, then bigbang for the new system to answer; NixOS is on the disk. If it stays silent, the serial console shows the boot (" + OracleConsole + ")",
	},
}

// Machine is the machine's state when an install stops or fails in phase
// id; an unknown or empty phase is the state before anything ran.
func Machine(id steps.PhaseID) MachineState {
	if s, ok := machineStates[id]; ok {
		return s
	}
	return MachineState{
		State: "Which phase the install reached is not known: the transcript says (bigbang explain).",
		Safe:  "Reading the transcript before anything else.",
		Do:    "Run bigbang explain on the transcript; it names the phase, and bigbang status says whether the server answers.",
		Stall: "the command printed nothing",
	}
}

// MachineField is one labelled line of what the machine's state tells the
// operator after a failure or a stop.
type MachineField struct{ Label, Text string }

// MachineFields are the lines every front end prints after an install
// failed or was stopped in phase id: the state the server is in, what is
// safe, and — when there is no resume command to show — what to do. The
// plain output, the accessible wizard and the TUI's exit summary all print
// these, so each says the same.
func MachineFields(id steps.PhaseID, resume bool) []MachineField {
	ms := Machine(id)
	out := []MachineField{{"The server", ms.State}, {"Safe now", ms.Safe}}
	if !resume {
		out = append(out, MachineField{"Then", ms.Do})
	}
	return out
}
