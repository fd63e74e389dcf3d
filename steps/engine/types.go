package engine

import (
	"path"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// HostKeyStatus says what known_hosts knows about the target's host key.
type HostKeyStatus string

// The host key states the preflight reports.
const (
	HostKeyKnown   HostKeyStatus = "known"   // pinned and matching
	HostKeyNew     HostKeyStatus = "new"     // never seen: ask the operator
	HostKeyChanged HostKeyStatus = "changed" // differs from the pinned key: refuse
)

// HostKey is the target's host key as the preflight met it.
type HostKey struct {
	Fingerprint string // SHA256:…
	Type        string // ssh-ed25519
	Status      HostKeyStatus
}

// Partition is one partition of a disk that will be wiped.
type Partition struct {
	Name       string // sda1
	Size       int64
	FSType     string
	Mountpoint string
}

// Disk is one disk that will be wiped, as the target reports it.
type Disk struct {
	Device     string // /dev/sda
	Model      string
	Size       int64
	Partitions []Partition
}

// Report is what the preflight found.
type Report struct {
	Checks            []steps.Check
	HostKey           HostKey
	SudoNeedsPassword bool   // the login user has sudo, but only with a password
	TargetRAM         int64  // bytes
	TargetSystem      string // e.g. aarch64-linux
	LocalSystem       string // e.g. x86_64-linux
	TargetOS          string // e.g. Oracle Linux Server 9.4
	CPUs              int
	Disks             []Disk
	TargetIsInstaller bool
	// LocalCanBuild says whether this machine can build for TargetSystem
	// (same system, a remote builder, or emulation in nix.conf), whatever
	// the build location chosen, for the RAM screen; LocalBuildNote says
	// why. Build holds the facts they come from, which judge a changed
	// choice (WithBuild).
	LocalCanBuild  bool
	LocalBuildNote string
	Build          local.BuildFacts
	// Flake is the evaluation of the flake the preflight checked, nil when
	// it did not evaluate; FlakeSummary is its part of check's JSON.
	Flake        *flake.Info
	FlakeSummary any
	// Facts are the target's facts, nil when it was not reached.
	Facts *remote.Facts
}

// Blocking is the number of checks that stop an install.
func (r Report) Blocking() int { return steps.CountBlocking(r.Checks) }

// PlanEnv is what the plan needs to know of both machines.
func (r Report) PlanEnv() steps.PlanEnv {
	return steps.PlanEnv{LocalSystem: r.LocalSystem, TargetSystem: r.TargetSystem,
		TargetRAM: r.TargetRAM, TargetIsInstaller: r.TargetIsInstaller}
}

// reportFromFacts builds the report from the target's facts and the checks
// run over them. Wiped are the devices the flake's disko layout uses
// (empty: the default disk).
func reportFromFacts(f remote.Facts, checks []steps.Check, hk HostKey, wiped []string) Report {
	r := Report{
		Checks:            checks,
		HostKey:           hk,
		TargetRAM:         f.MemTotalBytes,
		TargetSystem:      remote.NixSystem(f.Arch),
		LocalSystem:       LocalSystem(),
		TargetOS:          f.OSPrettyName,
		TargetIsInstaller: f.IsInstaller(),
		SudoNeedsPassword: !f.IsRoot && f.HasSudo && !f.PasswordlessSudo,
		Facts:             &f,
	}
	r.LocalCanBuild = r.LocalSystem == r.TargetSystem
	if len(wiped) == 0 {
		wiped = []string{remote.DefaultDisk}
	}
	for _, dev := range wiped {
		d, ok := f.Disk(dev)
		if !ok {
			r.Disks = append(r.Disks, Disk{Device: dev})
			continue
		}
		disk := Disk{Device: d.Path, Model: d.Model, Size: d.SizeBytes}
		for _, p := range d.Partitions {
			mp := ""
			if len(p.Mountpoints) > 0 {
				mp = p.Mountpoints[0]
			}
			disk.Partitions = append(disk.Partitions, Partition{Name: path.Base(p.Path), Size: p.SizeBytes, FSType: p.FSType, Mountpoint: mp})
		}
		r.Disks = append(r.Disks, disk)
	}
	return r
}

// LocalSystem is this machine's Nix system, e.g. x86_64-linux.
func LocalSystem() string { return local.System() }

// InstallRequest is what Install runs.
type InstallRequest struct {
	Config steps.Config
	Plan   steps.Plan
	Log    string
	Disks  []Disk
	// Flake is the preflight's evaluation of the flake (nil: none).
	Flake *flake.Info
	// Resume says how the resume command is written.
	Resume ResumeStyle
	// Drift is a reinstall's flake layout, recorded in the receipt.
	Layout []reinstall.FlakeDisk
	// StateKnown says the caller already matched a resume (--phases) to the
	// machine's state; otherwise Install probes the machine first.
	StateKnown bool
}

// InstallResult is how an install ended, with what the result screen shows.
type InstallResult struct {
	Outcome            steps.Outcome
	FailedPhase        steps.PhaseID
	Diagnosis          *steps.Diagnosis
	Log                string
	ExitCode           int
	HostKeyFingerprint string // the new system's key, now in known_hosts
	SSHCommand         string // the exact line to log in
	// Receipt is the file that records this install ("" when none was
	// written).
	Receipt string
	// Resume is the exact command that resumes a failed or interrupted
	// install ("" after a success, or when running it again cannot help).
	Resume string
	// Notes are what the operator must know besides the outcome, such as
	// a transcript that could not be written whole.
	Notes []string
}

// Words say how an install (or a reinstall) ended, for the line a front
// end leaves on the terminal.
func (r InstallResult) Words(reinstall bool) string {
	switch {
	case r.Outcome == steps.OutcomeSuccess && reinstall:
		return "reinstalled"
	case r.Outcome == steps.OutcomeSuccess:
		return "installed"
	case r.Diagnosis != nil && r.Diagnosis.ID == "restore":
		return "reinstalled, but the restore did not complete (the backup is kept)"
	case r.Diagnosis != nil && r.Diagnosis.ID == DiagnosisRestoreBeforeBoot:
		return "installed but not rebooted: the restore before the first boot did not complete (the backup is kept)"
	case r.Outcome == steps.OutcomeAborted:
		return "interrupted"
	case reinstall:
		return "the reinstall failed"
	}
	return "the install failed"
}

// Drift is what the reinstall's first step found.
type Drift struct {
	Report reinstall.Report
	// HostKey says what the host key step found or did, in words.
	HostKey            string
	HostKeyFingerprint string
	// NewHostKey is set (Status HostKeyNew) when known_hosts does not know
	// the machine: nothing else ran, and the operator compares the key
	// first, as the install's preflight does.
	NewHostKey HostKey
	// Layout is the flake's disk layout, for the receipt.
	Layout []reinstall.FlakeDisk
}

// Restored is how the restore ended.
type Restored struct {
	Result reinstall.RestoreResult
	// Receipt is the receipt that now records the restore ("" when it
	// could not be written; Notes say why).
	Receipt string
	Notes   []string
}
