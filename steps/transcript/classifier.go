// Package transcript classifies nixos-anywhere output: it places every line
// in a phase (by the "### … ###" step lines, or by content where a fragment
// has none), finds the failures nixos-anywhere is known for (including the
// ones printed before a cheerful "Done!") and explains them in the
// operator's words. It works line by line, so the runner can use it live and
// `bigbang explain` can read a saved transcript of any size in flat memory.
package transcript

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
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
	// Evidence are the lines that led to the verdict, in transcript order,
	// so that the operator can check it.
	Evidence []Evidence `json:"evidence"`
	// Lines is the number of lines read.
	Lines int `json:"-"`
	// EvidenceLine is the line that shows the failure (0 when the
	// diagnosis comes from where the transcript stopped).
	EvidenceLine int `json:"-"`
}

// Evidence is one line of the transcript that counts for the verdict.
type Evidence struct {
	Line int    `json:"line"`
	Text string `json:"text"`
	// Why says what the line shows.
	Why string `json:"why"`
}

// failure is the failure currently believed to explain the run.
type failure struct {
	rule  *rule
	phase steps.PhaseID
	line  int
	text  string
}

// errLine is an error-looking line no rule explains.
type errLine struct {
	phase steps.PhaseID
	line  int
	text  string
	why   string
	weak  bool
}

// stepKind remembers the last step line, for the diagnoses that come from
// where a run stopped rather than from an error line.
type stepKind int

const (
	stepNone stepKind = iota
	stepFacts
	stepReboot
	stepCopy // the closure copy or build into the installer
	stepOther
)

// maxQuote bounds the text kept of one evidence line.
const maxQuote = 300

// supersededAfter is how many ordinary lines after an unexplained error
// line show that the run went on past it (nixos-anywhere stops at the
// first failing command; what follows a real failure is its cleanup).
const supersededAfter = 40

// weakNear is how close to the end of a transcript of unknown exit status
// a weak sign of an error ("failed", "+ exit 1") must be to count.
const weakNear = 3

// Classifier classifies a stream of nixos-anywhere output lines. The zero
// value is not ready; use New. It is not safe for concurrent use.
type Classifier struct {
	line     int
	cur      steps.PhaseID
	spans    [numPhases]Span
	seen     [numPhases]bool
	entered  [numPhases]Evidence // the line that started each phase
	order    []steps.PhaseID     // phases in the order they started
	anchored bool                // a step line has been seen
	byHints  bool                // the stream is in build only because of nix output at its start
	lastStep stepKind
	quiet    bool // only noise since the last step line
	done     bool // "### Done! ###" seen

	keysSkipped     bool // ssh-copy-id said "All keys were skipped"
	installFinished bool
	machineBoots    bool // the kexec script said the machine will boot into the installer
	rsyncInKeys     bool // the old rsync-based extra-files copy ran

	facts [numFacts]Evidence // the first line that showed each fact

	fail *failure
	// errs are the last error-looking lines of the current stretch, the
	// latest last; calm counts the ordinary lines since the latest.
	errs [3]errLine
	nerr int
	calm int

	// bigbang's own records.
	exitStatus  int // -1: none
	exitLine    Evidence
	interrupted Evidence
	verified    Evidence
	rebootFail  Evidence
	rebootID    string
	rebootSum   string

	// memo is the placement of the last line that only placed the
	// stream.
	memo memo

	buf []byte // scratch for cleaning lines with escapes
}

// memo remembers where a line with only placement needles went.
type memo struct {
	hits     hitSet
	cur, to  steps.PhaseID
	anchored bool
}

// New returns a classifier at the start of a stream.
func New() *Classifier { return &Classifier{exitStatus: -1} }

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

// enter makes p the phase that current lines belong to; text is the line
// that shows it, kept as evidence of where the phase began.
func (c *Classifier) enter(p steps.PhaseID, text string, ch []Change) []Change {
	if p == c.cur {
		return ch
	}
	if c.byHints && c.cur == build && (p == disko || p == install || p == keys) {
		// A fragment that starts with nix's copying lines and goes on in
		// the installer: those lines were the installer substituting the
		// disko or system closure, not a local build. The phase takes
		// them over; build is taken back.
		first := c.spans[phaseIndex(build)].FirstLine
		c.unsee(build)
		ch = append(ch, Change{Phase: build, State: steps.StateSkipped})
		c.cur = ""
		ch = c.enter(p, text, ch)
		c.spans[phaseIndex(p)].FirstLine = first
		c.byHints = false
		return ch
	}
	c.byHints = false
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
	first := !c.seen[phaseIndex(p)]
	ch = c.set(p, steps.StateRunning, ch)
	if first {
		c.entered[phaseIndex(p)] = Evidence{Line: c.line, Text: quote(text), Why: "the " + p.Title() + " phase starts here"}
	}
	c.cur = p
	return ch
}

// unsee forgets phase p, which was never really entered.
func (c *Classifier) unsee(p steps.PhaseID) {
	i := phaseIndex(p)
	c.seen[i] = false
	c.spans[i] = Span{}
	c.entered[i] = Evidence{}
	for j, q := range c.order {
		if q == p {
			c.order = append(c.order[:j], c.order[j+1:]...)
			break
		}
	}
	for k := 0; k < c.nerr; k++ {
		if c.errs[k].phase == p {
			c.errs[k].phase = ""
		}
	}
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

// quote returns a copy of text short enough to keep.
func quote(text string) string {
	text = strings.TrimSpace(text)
	if len(text) > maxQuote {
		text = text[:maxQuote]
	}
	return strings.Clone(text)
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
		ch = c.step(s, text, ch)
	} else if rest, ok := strings.CutPrefix(text, "bigbang: "); ok {
		ch = c.own(rest, text, ch)
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
	t := trimBlanks(line)
	if len(t) < 8 || !strings.HasPrefix(t, "### ") {
		return "", false
	}
	t = strings.TrimRight(t, " \t")
	if !strings.HasSuffix(t, " ###") || len(t) < 8 {
		return "", false
	}
	return strings.TrimSpace(t[4 : len(t)-4]), true
}

// trimBlanks removes the spaces and tabs that start s.
func trimBlanks(s string) string {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return s[i:]
}

// step handles a step line.
func (c *Classifier) step(s, text string, ch []Change) []Change {
	c.anchored = true
	c.quiet = true
	kind := stepOther
	if c.fail != nil && !c.fail.rule.hard {
		// The run went on after a failure it does not stop for.
		c.fail = nil
	}
	// Whatever error came before, the run went on.
	c.nerr = 0
	switch {
	case s == "Uploading install SSH keys":
		ch = c.enter(connect, text, ch)
	case s == "Gathering machine facts":
		kind = stepFacts
		if c.cur != kexec {
			// The first time: facts of the original system. The second time
			// (in kexec) the installer answered: kexec worked and the phase
			// goes on until disko starts.
			ch = c.enter(connect, text, ch)
		}
	case s == "Switching system into kexec", strings.Contains(s, "kexec"),
		strings.HasPrefix(s, "Generating hardware-configuration.nix"),
		strings.HasPrefix(s, "Generating facter.json"):
		ch = c.enter(kexec, text, ch)
	case s == "Building disko script", s == "Formatting hard drive with disko", strings.Contains(s, "disko"):
		ch = c.enter(disko, text, ch)
	case s == "Uploading the system closure", s == "Building the system closure":
		kind = stepCopy
		ch = c.enter(install, text, ch)
	case strings.HasPrefix(s, "Uploading ") && strings.Contains(s, " to "):
		// Disk encryption keys go up right before disko.
		ch = c.enter(disko, text, ch)
	case s == "Copying extra files":
		ch = c.enter(keys, text, ch)
	case s == "Installing NixOS":
		ch = c.enter(install, text, ch)
	case s == "Rebooting", strings.HasPrefix(s, "Waiting for the mach"):
		// "Waiting for the machine to become unreachable due to reboot"
		// (1.13.0), "… to become reachable again" (before mid-2024) and its
		// older misspelling "maching".
		kind = stepReboot
		ch = c.enter(reboot, text, ch)
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

// own handles one of bigbang's own records, written after everything
// nixos-anywhere printed. Records it does not know are notes.
func (c *Classifier) own(rest, text string, ch []Change) []Change {
	ev := Evidence{Line: c.line, Text: quote(text)}
	switch {
	case strings.HasPrefix(rest, "exit status "):
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(rest, "exit status ")))
		if err != nil || n < 0 {
			return ch
		}
		c.exitStatus = n
		ev.Why = "bigbang recorded nixos-anywhere's exit status"
		c.exitLine = ev
	case strings.HasPrefix(rest, "interrupted by the operator"):
		ev.Why = "bigbang recorded that the operator interrupted the run"
		c.interrupted = ev
	case strings.HasPrefix(rest, "reboot verified"):
		ev.Why = "bigbang saw the new system come back with the pinned host key"
		c.verified = ev
		ch = c.enter(reboot, text, ch)
	case strings.HasPrefix(rest, "reboot failed: "):
		r := strings.TrimPrefix(rest, "reboot failed: ")
		id, sum, _ := strings.Cut(r, ": ")
		id = strings.TrimSpace(id)
		if !validID(id) {
			return ch
		}
		c.rebootID, c.rebootSum = strings.Clone(id), quote(sum)
		ev.Why = "bigbang's check of the new system failed"
		c.rebootFail = ev
		ch = c.enter(reboot, text, ch)
	}
	return ch
}

// validID reports whether s looks like a diagnosis ID (reboot.verify,
// disk-busy).
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// isTrace reports whether line is a shell trace line ("+ cmd", "++ cmd").
func isTrace(line string) bool {
	i := 0
	for i < len(line) && line[i] == '+' {
		i++
	}
	return i > 0 && i < len(line) && line[i] == ' '
}

// scan returns the needles in a line. nix's "copying path" lines and ssh's
// "Permanently added" warnings are most of a long transcript and have a
// fixed shape that holds no other needle, so they skip the automaton.
func scan(text string) hitSet {
	var h hitSet
	switch {
	case strings.HasPrefix(text, nCopying) && strings.IndexByte(text, ' ') == len("copying"):
		// "copying path '<store path>' from|to '<store URL>'...": the
		// store URL is at the end, so look for its quote from there.
		h.add(cat.copying)
		end := len(text)
		for end > 0 && (text[end-1] == '.' || text[end-1] == '\'') {
			end--
		}
		j := end - 1
		for j >= 0 && text[j] != '\'' {
			j--
		}
		if j > 0 && strings.HasSuffix(text[:j], " to ") {
			h.add(cat.copyTo)
		}
		return h
	case strings.HasPrefix(text, nNoisePerm) && strings.HasSuffix(text, "to the list of known hosts."):
		h.add(cat.noisePerm)
		return h
	case text == nNoisePTYLine:
		h.add(cat.noisePTY)
		return h
	}
	return cat.m.scan(text)
}

// content handles a line that is not a step line.
func (c *Classifier) content(text string, ch []Change) []Change {
	hits := scan(text)
	if hits.empty() {
		if strings.TrimSpace(text) != "" {
			c.quiet = false
			c.calmer()
		}
		return ch
	}
	noise := hits.and(cat.noise)
	if c.quiet && noise != hits {
		c.quiet = false
	}
	inert := hits.and(cat.active).empty()
	if inert && hits == c.memo.hits && c.cur == c.memo.cur && c.anchored == c.memo.anchored {
		// The same placement needles as the line before, where the
		// stream still is, and nothing else: most of a long transcript
		// (nix's copying lines). The answer is the same.
		c.calmer()
		return c.enter(c.memo.to, text, ch)
	}
	from, anchored := c.cur, c.anchored
	ruleSet, hintSet := cat.candidates(hits)
	// Placement by content: the line goes to the furthest phase its
	// content points at, entered once so that no phase is left without
	// lines.
	to := c.cur
	viaFirst := false
	for x := hintSet; x != 0; x &= x - 1 {
		h := &cat.hints[bits.TrailingZeros64(x)]
		if !forward(to, h.phase) || !hits.hasAll(h.mask) {
			continue
		}
		if h.first && (c.anchored || c.cur != "") {
			continue
		}
		if h.prefix && !strings.HasPrefix(trimBlanks(text), h.all[0]) {
			continue
		}
		if h.first && hits.has(cat.copyTo) {
			// Nix copying to another store is never the local build.
			continue
		}
		to = h.phase
		viaFirst = h.first
	}
	if hits.has(cat.copyTo) && c.anchored && rank(to) < rank(disko) && (c.cur == connect || c.cur == kexec) {
		// The installer is up and nothing was built yet: nixos-anywhere
		// copies the disko script's closure before it prints the disko
		// step.
		to = disko
	}
	if to != c.cur && c.cur != "" && c.fail != nil && !c.fail.rule.hard {
		// Output of a later phase: the run went on after a failure it does
		// not stop for (a fragment without step lines).
		c.fail = nil
	}
	// Notes and facts that later diagnoses depend on.
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
	if !hits.and(cat.anyFact).empty() {
		for f := range cat.facts {
			if c.facts[f].Line == 0 && !hits.and(cat.facts[f]).empty() {
				c.facts[f] = Evidence{Line: c.line, Text: quote(text), Why: factWhy[f]}
			}
		}
	}
	if to == install && c.installFinished && hits.has(cat.sshConnect) {
		// Older versions had no "Rebooting" step: the install ended and
		// the wait for the reboot began.
		to = reboot
	}
	// Failures. Trace lines only echo commands, some of which print the
	// very words the rules look for; the real message follows them.
	trace := isTrace(text)
	if !ruleSet.empty() && !trace {
		to = c.failures(text, hits, ruleSet, to)
	}
	if to != c.cur {
		// The run moved on: the error lines before belong to a stretch
		// that did not stop it.
		c.nerr = 0
	}
	if viaFirst && c.cur == "" {
		ch = c.enter(to, text, ch)
		c.byHints = true
	} else {
		ch = c.enter(to, text, ch)
	}
	if inert && !viaFirst {
		c.memo = memo{hits: hits, cur: from, anchored: anchored, to: to}
	}
	if hits.and(cat.errs).empty() {
		c.calmer()
	} else {
		c.errorLine(text, hits, trace)
	}
	return ch
}

// calmer counts an ordinary line after an unexplained error line.
func (c *Classifier) calmer() {
	if c.nerr > 0 {
		c.calm++
		if c.calm > supersededAfter {
			c.nerr = 0
		}
	}
}

// errorLine keeps the line if it looks like an error: the generic
// evidence every transcript gets, whether or not a rule knows the error.
func (c *Classifier) errorLine(text string, hits hitSet, trace bool) {
	why, weak := cat.whyError(hits)
	if why == "" || !hits.and(cat.noise).empty() {
		c.calmer()
		return
	}
	if trace {
		// Of the trace lines, only the script's own non-zero exit counts.
		if !exitTrace(text) {
			c.calmer()
			return
		}
		why, weak = "the script exits with an error", true
	} else if hits.has(cat.index[": line "]) && !isBashError(text) && why == "a shell script error" {
		c.calmer()
		return
	} else if t := strings.TrimSpace(text); strings.HasPrefix(t, "cp: cannot stat '/root/.ssh/authorized_keys'") || isWarning(t) {
		// Warnings, and a harmless quirk of the switch to root@
		// (NIXOS-ANYWHERE.md), do not stop a run.
		c.calmer()
		return
	}
	if c.nerr == len(c.errs) {
		copy(c.errs[:], c.errs[1:])
		c.nerr--
	}
	c.errs[c.nerr] = errLine{phase: c.cur, line: c.line, text: quote(text), why: why, weak: weak}
	c.nerr++
	c.calm = 0
}

// isWarning reports whether a line is a warning (nix's "warning:",
// nixos-anywhere's "WARNING:", the Boehm GC's "GC Warning").
func isWarning(t string) bool {
	for _, p := range []string{"warning:", "Warning:", "WARNING:", "GC Warning"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// exitTrace reports whether a trace line is a non-zero "exit N".
func exitTrace(text string) bool {
	t := strings.TrimLeft(text, "+")
	t, ok := strings.CutPrefix(t, " exit ")
	if !ok {
		return false
	}
	t = strings.TrimSpace(t)
	return t != "" && t != "0" && t[0] >= '0' && t[0] <= '9'
}

// failures applies the first rule (in priority order) that matches the
// line where the stream is, and returns the phase the line belongs to.
func (c *Classifier) failures(text string, hits, ruleSet hitSet, to steps.PhaseID) steps.PhaseID {
	for w := range ruleSet {
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
	c.fail = &failure{rule: r, phase: phase, line: c.line, text: quote(text)}
}

// lastError returns the error line to quote: the last strong one of the
// current stretch, else the last weak one.
func (c *Classifier) lastError() (errLine, bool) {
	for k := c.nerr - 1; k >= 0; k-- {
		if !c.errs[k].weak {
			return c.errs[k], true
		}
	}
	if c.nerr > 0 {
		return c.errs[c.nerr-1], true
	}
	return errLine{}, false
}

// Finish ends the stream. exitCode is the child's exit status, or -1 when it
// is not known (a saved transcript: then bigbang's own "bigbang: exit
// status N" record counts, if the transcript has one). It returns the last
// state changes (running phases become done or failed; a transcript that
// just stops leaves them running) and the report.
func (c *Classifier) Finish(exitCode int) ([]Change, Report) {
	rep := Report{Lines: c.line}
	if exitCode < 0 && c.exitStatus >= 0 {
		exitCode = c.exitStatus
	}
	interrupted := c.interrupted.Line > 0 || exitCode == 130
	if interrupted && exitCode <= 0 {
		exitCode = 130
	}
	gen, haveGen := c.lastError()
	var ev []Evidence
	hard := c.fail != nil && c.fail.rule.hard
	switch {
	case c.rebootFail.Line > 0:
		rep.Outcome = OutcomeFailed
		rep.FailedPhase = reboot
		d := diagnosis(c.rebootID)
		if d.ID != c.rebootID {
			d = steps.Diagnosis{ID: c.rebootID, Remedy: diagnosis("reboot.verify").Remedy}
		}
		if c.rebootSum != "" {
			d.Summary = c.rebootSum
		}
		rep.Diagnosis = d
		rep.EvidenceLine = c.rebootFail.Line
		ev = append(ev, c.rebootFail)
		if c.fail != nil {
			ev = append(ev, c.failEvidence())
		}
	case hard || (c.fail != nil && exitCode != 0):
		rep.Outcome = OutcomeFailed
		rep.FailedPhase = c.fail.phase
		rep.Diagnosis = c.diagnose(c.fail.rule.diag)
		rep.EvidenceLine = c.fail.line
		ev = append(ev, c.failEvidence())
		ev = append(ev, c.contextFor(rep.Diagnosis.ID)...)
	case exitCode > 0:
		rep.Outcome = OutcomeFailed
		if id := c.stoppedDiagnosis(exitCode); (id != "unknown" && id != "interrupted") || !haveGen {
			rep.FailedPhase = c.cur
			rep.Diagnosis = diagnosis(id)
			ev = append(ev, c.contextFor(id)...)
		} else {
			rep.FailedPhase, rep.Diagnosis = c.generic(gen)
			rep.EvidenceLine = gen.line
			if interrupted {
				rep.Diagnosis = diagnosis("interrupted")
			}
		}
	case exitCode == 0 || c.done || c.verified.Line > 0:
		rep.Outcome = OutcomeSuccess
	case haveGen && (!gen.weak || c.calm <= weakNear):
		// Without an exit status, only a plain error, or a weaker sign
		// of one right at the end, says the run failed there.
		rep.Outcome = OutcomeFailed
		rep.FailedPhase, rep.Diagnosis = c.generic(gen)
		rep.EvidenceLine = gen.line
	default:
		rep.Outcome = OutcomeIncomplete
	}
	if rep.Outcome != OutcomeSuccess {
		for k := 0; k < c.nerr; k++ {
			if c.errs[k].line != rep.EvidenceLine {
				ev = append(ev, Evidence{Line: c.errs[k].line, Text: c.errs[k].text, Why: "error-looking line: " + c.errs[k].why})
			} else {
				ev = append(ev, Evidence{Line: c.errs[k].line, Text: c.errs[k].text, Why: "the last error line before the run stopped: " + c.errs[k].why})
			}
		}
	}

	var ch []Change
	switch rep.Outcome {
	case OutcomeFailed:
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
			if sp := &c.spans[phaseIndex(rep.FailedPhase)]; sp.FirstLine == 0 {
				// An error line that nothing placed: the phase it names
				// holds it and what follows.
				sp.FirstLine, sp.LastLine = max(rep.EvidenceLine, 1), max(c.line, 1)
			}
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
		id := c.stoppedDiagnosis(exitCode)
		rep.Diagnosis = diagnosis(id)
		ev = append(ev, c.contextFor(id)...)
	}
	// Where the phase that failed (or the one the run stopped in) began,
	// and bigbang's own records.
	if p := rep.FailedPhase; p != "" {
		if e := c.entered[phaseIndex(p)]; e.Text != "" {
			ev = append(ev, e)
		}
	}
	for _, e := range []Evidence{c.exitLine, c.interrupted, c.verified} {
		if e.Line > 0 {
			ev = append(ev, e)
		}
	}
	rep.Evidence = sortEvidence(ev)
	rep.Phases = make([]Span, 0, len(c.order))
	for _, q := range c.order {
		rep.Phases = append(rep.Phases, c.spans[phaseIndex(q)])
	}
	return ch, rep
}

// failEvidence is the evidence of the failure a rule found.
func (c *Classifier) failEvidence() Evidence {
	return Evidence{Line: c.fail.line, Text: c.fail.text, Why: "matches the known failure " + c.diagnose(c.fail.rule.diag).ID}
}

// sortEvidence orders evidence by line and drops repeated lines.
func sortEvidence(ev []Evidence) []Evidence {
	slices.SortStableFunc(ev, func(a, b Evidence) int { return a.Line - b.Line })
	out := ev[:0]
	for _, e := range ev {
		if len(out) > 0 && out[len(out)-1].Line == e.Line {
			continue
		}
		out = append(out, e)
	}
	if out == nil {
		out = []Evidence{}
	}
	return out
}

// generic is the verdict on a run that stopped on an error line no rule
// knows: the phase it came from, and a diagnosis that quotes it.
func (c *Classifier) generic(e errLine) (steps.PhaseID, steps.Diagnosis) {
	p := e.phase
	if p == "" {
		// Nothing placed the line: a Nix error before anything else is the
		// local evaluation or build; anything else stopped the script
		// before or while it reached the target.
		p = connect
		if strings.Contains(e.text, "error:") {
			p = build
		}
	}
	d := diagnosis("unrecognised-error")
	d.Summary = fmt.Sprintf("nixos-anywhere stopped in %s on an error bigbang has no specific diagnosis for (%s), line %d: %s", p.Title(), e.why, e.line, e.text)
	d.Remedy = lookAt[p] + " " + d.Remedy
	return p, d
}

// lookAt says what to look at first when a phase failed on an unknown
// error.
var lookAt = map[steps.PhaseID]string{
	build:   "The local build failed: build the configuration on its own (nix build .#nixosConfigurations.<name>.config.system.build.toplevel) to see the whole error.",
	connect: "The target refused or broke the first connection: ssh to it by hand with the same user and key, and check sudo.",
	kexec:   "The switch into the installer failed: read $HOME/kexec/nixos-anywhere.log on the target; check RAM, Secure Boot and free space in $HOME.",
	disko:   "Partitioning failed: compare the devices and sizes in disko.nix with lsblk on the target.",
	install: "Installing the system failed: check free space on the new disk, the closure copy and the activation output.",
	keys:    "Copying the extra files failed: check the --extra-files folder and free space on the target.",
	reboot:  "The machine did not come back as expected: open the provider's serial console.",
}

// contextFor is the evidence of the facts a diagnosis weighed.
func (c *Classifier) contextFor(id string) []Evidence {
	var fs []fact
	switch id {
	case "secure-boot", "kexec-old-kernel":
		fs = []fact{factSecureBootOn, factSecureBootOff, factOldKernel}
	case "installer-low-memory":
		fs = []fact{factAutoGC}
	case "ssh-controlmaster-hang":
		fs = []fact{factControlMaster}
	}
	var ev []Evidence
	for _, f := range fs {
		if c.facts[f].Line > 0 {
			ev = append(ev, c.facts[f])
		}
	}
	return ev
}

// diagnose refines a rule's diagnosis with the other facts of the
// transcript.
func (c *Classifier) diagnose(id string) steps.Diagnosis {
	switch {
	case id == "root-permission-denied" && c.keysSkipped:
		id = "keys-skipped"
	case id == "secure-boot" && c.facts[factSecureBootOn].Line == 0 &&
		(c.facts[factOldKernel].Line > 0 || c.facts[factSecureBootOff].Line > 0):
		// The kernel refused kexec, but the machine runs without Secure
		// Boot or on an old kernel: the syscall, not the signature policy.
		id = "kexec-old-kernel"
	case (id == "connection-lost" || id == "install-oom") && c.facts[factAutoGC].Line > 0:
		id = "installer-low-memory"
	}
	return diagnosis(id)
}

// stoppedDiagnosis explains a run that failed with no known error line, or
// a transcript that just stops, by where it stopped and what it showed.
func (c *Classifier) stoppedDiagnosis(exitCode int) string {
	inInstaller := c.cur == disko || c.cur == install || c.cur == keys
	switch {
	case c.cur == reboot && !c.done && c.lastStep == stepReboot && c.quiet:
		return "reboot-never"
	case c.facts[factControlMaster].Line > 0 && c.cur != reboot && c.cur != build && !c.done:
		return "ssh-controlmaster-hang"
	case inInstaller && c.facts[factAutoGC].Line > 0:
		return "installer-low-memory"
	case c.lastStep == stepFacts && c.quiet:
		return "ssh-controlmaster-hang"
	case c.lastStep == stepCopy && c.quiet && exitCode != 0:
		return "ssh-controlmaster-hang"
	case exitCode == 130:
		return "interrupted"
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
