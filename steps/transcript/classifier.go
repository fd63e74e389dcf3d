// Package transcript classifies nixos-anywhere output: it places every line
// in a phase (by the "### … ###" step lines, or by content where a fragment
// has none), finds the failures nixos-anywhere is known for (including the
// ones printed before a cheerful "Done!") and explains them in the
// operator's words. It works line by line, so the runner can use it live and
// `bigbang explain` can read a saved transcript of any size in flat memory.
package transcript

import (
	"math/bits"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// Change is one phase state change caused by a line or by the end of the
// stream.
type Change struct {
	Phase steps.PhaseID
	State steps.PhaseState
}

// Span is what the transcript shows of one phase: its final state and the
// lines (1-based, inclusive) that belong to it.
type Span struct {
	ID        steps.PhaseID    `json:"id"`
	State     steps.PhaseState `json:"state"`
	FirstLine int              `json:"first_line"`
	LastLine  int              `json:"last_line"`
}

// The outcomes of a classified transcript.
const (
	OutcomeSuccess    = "success"
	OutcomeFailed     = "failed"
	OutcomeIncomplete = "incomplete"
)

// Report is the classification of a whole transcript. Its JSON form is the
// `bigbang explain --json` contract of DESIGN.md.
type Report struct {
	Outcome     string          `json:"outcome"`
	FailedPhase steps.PhaseID   `json:"failed_phase"`
	Phases      []Span          `json:"phases"`
	Diagnosis   steps.Diagnosis `json:"diagnosis"`
	// Lines is the number of lines read.
	Lines int `json:"-"`
	// EvidenceLine and Evidence are the line that shows the failure (0 and
	// "" when the diagnosis comes from where the transcript stopped).
	EvidenceLine int    `json:"-"`
	Evidence     string `json:"-"`
}

// failure is the failure currently believed to explain the run.
type failure struct {
	rule  *rule
	phase steps.PhaseID
	line  int
	text  string
}

// stepKind remembers the last step line, for the diagnoses that come from
// where a run stopped rather than from an error line.
type stepKind int

const (
	stepNone stepKind = iota
	stepFacts
	stepReboot
	stepOther
)

// Classifier classifies a stream of nixos-anywhere output lines. The zero
// value is not ready; use New. It is not safe for concurrent use.
type Classifier struct {
	line     int
	cur      steps.PhaseID
	spans    [numPhases]Span
	seen     [numPhases]bool
	order    []steps.PhaseID // phases in the order they started
	anchored bool            // a step line has been seen
	lastStep stepKind
	quiet    bool // only noise since the last step line
	done     bool // "### Done! ###" seen

	keysSkipped     bool // ssh-copy-id said "All keys were skipped"
	installFinished bool
	machineBoots    bool // the kexec script said the machine will boot into the installer
	rsyncInKeys     bool // the old rsync-based extra-files copy ran

	fail *failure
	buf  []byte // scratch for cleaning lines with escapes
}

// New returns a classifier at the start of a stream.
func New() *Classifier { return &Classifier{} }

const numPhases = 7

func phaseIndex(p steps.PhaseID) int {
	switch p {
	case build:
		return 0
	case connect:
		return 1
	case kexec:
		return 2
	case disko:
		return 3
	case install:
		return 4
	case keys:
		return 5
	case reboot:
		return 6
	}
	return -1
}

// rank orders phases by when they happen. The key copy runs inside the
// install phase, so keys and install share a rank: content can move between
// them in both directions.
func rank(p steps.PhaseID) int {
	if p == keys {
		p = install
	}
	return phaseIndex(p)
}

func (c *Classifier) state(p steps.PhaseID) steps.PhaseState {
	i := phaseIndex(p)
	if i < 0 || !c.seen[i] {
		return ""
	}
	return c.spans[i].State
}

func (c *Classifier) set(p steps.PhaseID, s steps.PhaseState, ch []Change) []Change {
	i := phaseIndex(p)
	if !c.seen[i] {
		c.seen[i] = true
		c.spans[i] = Span{ID: p}
		c.order = append(c.order, p)
	}
	if c.spans[i].State == s {
		return ch
	}
	c.spans[i].State = s
	return append(ch, Change{Phase: p, State: s})
}

// enter makes p the phase that current lines belong to.
func (c *Classifier) enter(p steps.PhaseID, ch []Change) []Change {
	if p == c.cur {
		return ch
	}
	switch {
	case p == keys && c.state(install) == steps.StateRunning:
		// The key copy runs inside the install phase, which stays running.
	case c.cur == keys && p == install && c.state(install) == steps.StateRunning:
		ch = c.set(keys, steps.StateDone, ch)
		c.cur = install
		return ch
	default:
		for _, q := range c.order {
			if c.state(q) == steps.StateRunning {
				ch = c.set(q, steps.StateDone, ch)
			}
		}
	}
	ch = c.set(p, steps.StateRunning, ch)
	c.cur = p
	return ch
}

// forward reports whether content that points at phase p may move the
// stream there from phase cur: content never moves it back.
func forward(cur, p steps.PhaseID) bool {
	if p == cur {
		return false
	}
	rp, rc := rank(p), rank(cur)
	return rp > rc || (rp == rc && (p == keys || p == install))
}

// Line classifies one output line. It returns the phase the line belongs to
// ("" while nothing places the stream yet) and the phase state changes the
// line causes, in order. Colour escapes and carriage-return progress are
// removed if the caller has not done so already.
func (c *Classifier) Line(text string) (steps.PhaseID, []Change) {
	c.line++
	text = c.clean(text)
	var ch []Change
	if s, ok := stepText(text); ok {
		ch = c.step(s, ch)
	} else {
		ch = c.content(text, ch)
	}
	if i := phaseIndex(c.cur); i >= 0 {
		sp := &c.spans[i]
		if sp.FirstLine == 0 {
			sp.FirstLine = c.line
		}
		sp.LastLine = c.line
	}
	return c.cur, ch
}

// stepText returns the text of a step line "### <text> ###". Trace lines of
// --debug ("+ echo '### … ###'", "+ step …") do not start with "###" and so
// are not steps.
func stepText(line string) (string, bool) {
	t := strings.TrimLeft(line, " \t")
	if len(t) < 8 || !strings.HasPrefix(t, "### ") {
		return "", false
	}
	t = strings.TrimRight(t, " \t")
	if !strings.HasSuffix(t, " ###") || len(t) < 8 {
		return "", false
	}
	return strings.TrimSpace(t[4 : len(t)-4]), true
}

// step handles a step line.
func (c *Classifier) step(s string, ch []Change) []Change {
	c.anchored = true
	c.quiet = true
	kind := stepOther
	if c.fail != nil && !c.fail.rule.hard {
		// The run went on after a failure it does not stop for.
		c.fail = nil
	}
	switch {
	case s == "Uploading install SSH keys":
		ch = c.enter(connect, ch)
	case s == "Gathering machine facts":
		kind = stepFacts
		if c.cur != kexec {
			// The first time: facts of the original system. The second time
			// (in kexec) the installer answered: kexec worked and the phase
			// goes on until disko starts.
			ch = c.enter(connect, ch)
		}
	case s == "Switching system into kexec",
		strings.HasPrefix(s, "Generating hardware-configuration.nix"),
		strings.HasPrefix(s, "Generating facter.json"):
		ch = c.enter(kexec, ch)
	case s == "Building disko script", s == "Formatting hard drive with disko":
		ch = c.enter(disko, ch)
	case s == "Uploading the system closure", s == "Building the system closure":
		ch = c.enter(install, ch)
	case strings.HasPrefix(s, "Uploading ") && strings.Contains(s, " to "):
		// Disk encryption keys go up right before disko.
		ch = c.enter(disko, ch)
	case s == "Copying extra files":
		ch = c.enter(keys, ch)
	case s == "Installing NixOS":
		ch = c.enter(install, ch)
	case s == "Rebooting", strings.HasPrefix(s, "Waiting for the mach"):
		// "Waiting for the machine to become unreachable due to reboot"
		// (1.13.0), "… to become reachable again" (before mid-2024) and its
		// older misspelling "maching".
		kind = stepReboot
		ch = c.enter(reboot, ch)
	case s == "Done!":
		// The end of nixos-anywhere's run: the machine has dropped off for
		// the reboot, which is as far as the transcript can see.
		c.done = true
		for _, q := range c.order {
			if c.state(q) == steps.StateRunning {
				ch = c.set(q, steps.StateDone, ch)
			}
		}
	default:
		// A step this classifier does not know (a newer version): the lines
		// stay where they are.
	}
	c.lastStep = kind
	return ch
}

// isTrace reports whether line is a shell trace line ("+ cmd", "++ cmd").
func isTrace(line string) bool {
	i := 0
	for i < len(line) && line[i] == '+' {
		i++
	}
	return i > 0 && i < len(line) && line[i] == ' '
}

// content handles a line that is not a step line.
func (c *Classifier) content(text string, ch []Change) []Change {
	hits := cat.m.scan(text)
	if hits.empty() {
		if c.quiet && strings.TrimSpace(text) != "" {
			c.quiet = false
		}
		return ch
	}
	if c.quiet && hits[0]&cat.noise[0] == 0 && hits[1]&cat.noise[1] == 0 {
		c.quiet = false
	}
	ruleSet, hintSet := cat.candidates(hits)
	// Placement by content: the line goes to the furthest phase its
	// content points at, entered once so that no phase is left without
	// lines.
	to := c.cur
	for x := hintSet; x != 0; x &= x - 1 {
		h := &cat.hints[bits.TrailingZeros64(x)]
		if !forward(to, h.phase) {
			continue
		}
		if h.first && (c.anchored || c.cur != "") {
			continue
		}
		if h.prefix && !strings.HasPrefix(strings.TrimLeft(text, " "), h.needle) {
			continue
		}
		to = h.phase
	}
	if to != c.cur && c.cur != "" && c.fail != nil && !c.fail.rule.hard {
		// Output of a later phase: the run went on after a failure it does
		// not stop for (a fragment without step lines).
		c.fail = nil
	}
	// Notes that later diagnoses depend on.
	if hits.has(cat.allKeysSkipped) {
		c.keysSkipped = true
	}
	if hits.has(cat.installFinished) {
		c.installFinished = true
	}
	if hits.has(cat.machineBoots) {
		c.machineBoots = true
	}
	if to == keys && hits.has(cat.rsync) {
		c.rsyncInKeys = true
	}
	if to == install && c.installFinished && hits.has(cat.sshConnect) {
		// Older versions had no "Rebooting" step: the install ended and
		// the wait for the reboot began.
		to = reboot
	}
	// Failures. Trace lines only echo commands, some of which print the
	// very words the rules look for; the real message follows them.
	if !ruleSet.empty() && !isTrace(text) {
		to = c.failures(text, hits, ruleSet, to)
	}
	return c.enter(to, ch)
}

// failures applies the first rule (in priority order) that matches the
// line where the stream is, and returns the phase the line belongs to.
func (c *Classifier) failures(text string, hits, ruleSet hitSet, to steps.PhaseID) steps.PhaseID {
	for w := 0; w < 2; w++ {
		for x := ruleSet[w]; x != 0; x &= x - 1 {
			r := &cat.rules[w*64+bits.TrailingZeros64(x)]
			if !hits.hasAll(r.mask) {
				continue
			}
			phase, ok := placeFailure(r, to)
			if !ok {
				continue
			}
			c.noteFailure(r, phase, text)
			return phase
		}
	}
	return to
}

// placeFailure decides whether rule r applies where the stream is, and in
// which phase the failure happened.
func placeFailure(r *rule, cur steps.PhaseID) (steps.PhaseID, bool) {
	if r.home != "" && rank(r.home) > rank(cur) {
		// Nothing placed the stream this far yet: the failure line itself
		// says which phase it comes from.
		return r.home, true
	}
	if len(r.where) == 0 {
		return cur, true
	}
	for _, p := range r.where {
		if p == cur {
			return cur, true
		}
	}
	return "", false
}

// noteFailure records a failure line unless an earlier one explains the
// run better.
func (c *Classifier) noteFailure(r *rule, phase steps.PhaseID, text string) {
	if c.fail != nil {
		old := c.fail.rule
		replace := (old.generic && !r.generic) || (!old.hard && r.hard)
		if !replace {
			return
		}
	}
	const maxEvidence = 300
	if len(text) > maxEvidence {
		text = text[:maxEvidence]
	}
	c.fail = &failure{rule: r, phase: phase, line: c.line, text: strings.Clone(text)}
}

// Finish ends the stream. exitCode is the child's exit status, or -1 when it
// is not known (a saved transcript). It returns the last state changes
// (running phases become done or failed; a transcript that just stops leaves
// them running) and the report.
func (c *Classifier) Finish(exitCode int) ([]Change, Report) {
	rep := Report{Lines: c.line}
	switch {
	case exitCode > 0:
		rep.Outcome = OutcomeFailed
	case c.fail != nil && (c.fail.rule.hard || exitCode < 0):
		rep.Outcome = OutcomeFailed
	case exitCode == 0 || c.done:
		rep.Outcome = OutcomeSuccess
	default:
		rep.Outcome = OutcomeIncomplete
	}

	var ch []Change
	switch rep.Outcome {
	case OutcomeFailed:
		if c.fail != nil && (c.fail.rule.hard || exitCode != 0) {
			rep.FailedPhase = c.fail.phase
			rep.Diagnosis = c.diagnose(c.fail.rule.diag)
			rep.EvidenceLine, rep.Evidence = c.fail.line, c.fail.text
		} else {
			rep.FailedPhase = c.cur
			rep.Diagnosis = diagnosis(c.stoppedDiagnosis(exitCode))
		}
		for _, q := range c.order {
			if c.state(q) != steps.StateRunning {
				continue
			}
			if q == rep.FailedPhase || (q == install && rep.FailedPhase == keys) {
				ch = c.set(q, steps.StateFailed, ch)
			} else {
				ch = c.set(q, steps.StateDone, ch)
			}
		}
		if rep.FailedPhase != "" {
			// A failure found even though the run went on (the boot loader
			// before "Done!") marks its phase failed after the fact.
			ch = c.set(rep.FailedPhase, steps.StateFailed, ch)
		}
	case OutcomeSuccess:
		for _, q := range c.order {
			if c.state(q) == steps.StateRunning {
				ch = c.set(q, steps.StateDone, ch)
			}
		}
	case OutcomeIncomplete:
		// The transcript stops in a phase without an error line: name the
		// phase it stopped in, so that the operator knows where to look
		// (the error lines were usually cut from a pasted fragment).
		rep.FailedPhase = c.cur
		rep.Diagnosis = diagnosis(c.stoppedDiagnosis(exitCode))
	}
	rep.Phases = make([]Span, 0, len(c.order))
	for _, q := range c.order {
		rep.Phases = append(rep.Phases, c.spans[phaseIndex(q)])
	}
	return ch, rep
}

// diagnose refines a rule's diagnosis with what the stream showed earlier.
func (c *Classifier) diagnose(id string) steps.Diagnosis {
	if id == "root-permission-denied" && c.keysSkipped {
		id = "keys-skipped"
	}
	return diagnosis(id)
}

// stoppedDiagnosis explains a run that failed with no known error line, or
// a transcript that just stops, by where it stopped.
func (c *Classifier) stoppedDiagnosis(exitCode int) string {
	switch {
	case exitCode == 130:
		return "interrupted"
	case c.cur == reboot && !c.done && c.lastStep == stepReboot && c.quiet:
		return "reboot-never"
	case c.lastStep == stepFacts && c.quiet:
		return "ssh-controlmaster-hang"
	case c.cur == kexec && c.machineBoots && exitCode > 0:
		return "installer-no-network"
	case c.cur == keys && c.rsyncInKeys && exitCode > 0:
		return "extra-files-rsync"
	case exitCode < 0:
		return "incomplete"
	}
	return "unknown"
}

// clean removes what a terminal would not show: everything up to the last
// carriage return (progress redrawn in place), ANSI escape sequences and
// trailing blanks. Lines without escapes are returned as they are.
func (c *Classifier) clean(s string) string {
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.TrimRight(s, "\r")
		if i := strings.LastIndexByte(s, '\r'); i >= 0 {
			s = s[i+1:]
		}
	}
	if strings.IndexByte(s, 0x1b) < 0 {
		return s
	}
	b := c.buf[:0]
	for i := 0; i < len(s); i++ {
		if s[i] != 0x1b {
			b = append(b, s[i])
			continue
		}
		if i+1 >= len(s) {
			break
		}
		switch s[i+1] {
		case '[': // CSI: parameters, then one final byte in 0x40..0x7e
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
		case ']': // OSC: up to BEL or ESC \
			j := i + 2
			for j < len(s) && s[j] != 0x07 && !(s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\') {
				j++
			}
			if j < len(s) && s[j] == 0x1b {
				j++
			}
			i = j
		case '(', ')', '*', '+', '-', '.', '/', '#', '%', ' ': // charset and similar: three bytes
			i += 2
		default: // two-byte escape
			i++
		}
	}
	c.buf = b
	return string(b)
}
