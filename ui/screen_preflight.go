package ui

import (
	"sort"

	"github.com/charmbracelet/x/ansi"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// preflightScreen is the live checklist.
type preflightScreen struct {
	cfg     steps.Config
	checks  []steps.Check
	running bool
	started time.Time
	report  engine.Report
	err     error

	askHostKey     bool
	hostKeyChanged bool
	offerSudo      bool
	askingPassword bool
	password       textinput.Model
	sudoErr        error
}

func newPreflightScreen(cfg steps.Config) preflightScreen {
	pw := textinput.New()
	// The password is never echoed, not even as dots: its length is
	// nobody's business either.
	pw.EchoMode = textinput.EchoNone
	pw.Prompt = "sudo password for " + cfg.User + ": "
	return preflightScreen{cfg: cfg, running: true, started: time.Now(), password: pw}
}

func (p *preflightScreen) add(c steps.Check) {
	for i := range p.checks {
		if p.checks[i].ID == c.ID {
			p.checks[i] = c
			return
		}
	}
	p.checks = append(p.checks, c)
}

func (p *preflightScreen) done(r engine.Report, err error) {
	p.running = false
	p.report, p.err = r, err
	for _, c := range r.Checks {
		p.add(c)
	}
	p.askHostKey = r.HostKey.Status == engine.HostKeyNew && !p.cfg.AcceptNewHostKey
	p.hostKeyChanged = r.HostKey.Status == engine.HostKeyChanged
	p.offerSudo = r.SudoNeedsPassword
}

func (p *preflightScreen) canContinue() bool {
	return !p.running && p.err == nil && !p.askHostKey && !p.hostKeyChanged && steps.CountBlocking(p.checks) == 0
}

// update returns an intent and, for intentSudo, the typed password (a copy
// the caller wipes after use).
func (p *preflightScreen) update(msg tea.Msg) (intent, []byte) {
	k, isKey := msg.(tea.KeyPressMsg)
	if p.askingPassword {
		if isKey {
			switch k.String() {
			case "esc":
				p.askingPassword = false
				p.password.Reset()
				return intentNone, nil
			case "enter":
				pw := []byte(p.password.Value())
				p.password.Reset()
				p.askingPassword = false
				p.running = true
				return intentSudo, pw
			}
		}
		var cmd tea.Cmd
		p.password, cmd = p.password.Update(msg)
		_ = cmd
		return intentNone, nil
	}
	if !isKey {
		return intentNone, nil
	}
	switch k.String() {
	case "esc":
		return intentBack, nil
	case "y":
		if p.askHostKey {
			return intentAccept, nil
		}
	case "n":
		if p.askHostKey {
			return intentBack, nil
		}
	case "s":
		if p.offerSudo && !p.running {
			p.askingPassword = true
			p.sudoErr = nil
			p.password.Focus()
		}
	case "r":
		if !p.running {
			return intentRetry, nil
		}
	case "enter":
		if p.canContinue() {
			return intentNext, nil
		}
	}
	return intentNone, nil
}

func (p *preflightScreen) keys() [][2]string {
	switch {
	case p.askingPassword:
		return [][2]string{{"enter", "set up sudo"}, {"esc", "cancel"}}
	case p.askHostKey:
		return [][2]string{{"y", "trust this key"}, {"n", "no, go back"}, {"?", "help"}}
	case p.running:
		return [][2]string{{"esc", "back"}, {"ctrl+c", "quit"}}
	case p.canContinue():
		return [][2]string{{"enter", "continue"}, {"d", "details"}, {"r", "check again"}, {"esc", "back"}, {"?", "help"}}
	}
	keys := [][2]string{{"d", "details"}, {"r", "check again"}, {"esc", "back"}}
	if p.offerSudo {
		keys = append([][2]string{{"s", "set up sudo"}}, keys...)
	}
	return append(keys, [2]string{"?", "help"})
}

func (p *preflightScreen) view(st styles, now time.Time, w, h int) string {
	var b strings.Builder
	tw := min(w-4, 90)
	b.WriteString("\n")
	head := "Checking " + p.cfg.User + "@" + p.cfg.Host + " and " + p.cfg.Flake
	if p.running {
		head = spinnerFrame(now) + " " + head + st.Dim.Render(" · "+formatDuration(now.Sub(p.started)))
	}
	b.WriteString(indent(st.Header.Render(head), 1) + "\n\n")
	var blocks []string
	for _, c := range p.checks {
		blk := indent(checkGlyph(st, c.Status)+" "+hanging(wrap(c.Summary, tw-2), 2), 2)
		if c.Fix != "" && (c.Status == steps.StatusWarn || c.Status == steps.StatusFail) {
			blk += "\n" + indent(st.Dim.Render(wrap(c.Fix, tw-4)), 4)
		}
		blocks = append(blocks, blk)
	}
	if p.running && len(p.checks) == 0 {
		blocks = append(blocks, indent(st.Dim.Render("connecting…"), 2))
	}
	var d strings.Builder
	d.WriteString("\n")
	switch {
	case p.err != nil:
		d.WriteString(indent(st.Fail.Render(glyphFail+" ")+wrap(p.err.Error(), tw-2), 1) + "\n")
	case p.hostKeyChanged:
		d.WriteString(indent(st.Fail.Bold(true).Render(glyphFail+" The host key of "+p.cfg.Host+" has CHANGED."), 1) + "\n")
		d.WriteString(indent(wrap("known_hosts pins another key for this host; it may be a different machine. bigbang refuses to go on. If you rebuilt the VPS, remove the old entry with: "+engine.ForgetHostKeyCommand(p.cfg), tw), 3) + "\n")
		d.WriteString(indent(st.Dim.Render("now: "+p.report.HostKey.Fingerprint), 3) + "\n")
	case p.askHostKey:
		d.WriteString(hostKeyQuestion(st, p.cfg.Host, p.report.HostKey, w, tw))
	case p.askingPassword:
		d.WriteString(indent(wrap("bigbang will add the line '"+p.cfg.User+" ALL=(ALL) NOPASSWD:ALL' to /etc/sudoers.d/90-nixos-anywhere on the target. The password is used once and never stored or logged.", tw), 1) + "\n\n")
		d.WriteString(indent(p.password.View(), 1) + "\n")
	case p.running:
	case p.canContinue():
		n := 0
		for _, c := range p.checks {
			if c.Status == steps.StatusWarn {
				n++
			}
		}
		msg := st.OK.Render(glyphOK + " Nothing blocks the install.")
		if n > 0 {
			msg += st.Dim.Render(" " + itoa(n) + " warning(s) above are worth reading.")
		}
		d.WriteString(indent(msg, 1) + "\n")
	default:
		n := steps.CountBlocking(p.checks)
		d.WriteString(indent(st.Fail.Render(glyphFail+" "+itoa(n)+" problem(s) block the install.")+" Fix them, then press r to check again.", 1) + "\n")
		if p.offerSudo {
			d.WriteString(indent(st.Accent.Render("s")+" sets up passwordless sudo for "+p.cfg.User+" (you type the password once).", 1) + "\n")
		}
	}
	if p.sudoErr != nil {
		d.WriteString(indent(st.Fail.Render(glyphFail+" sudo setup: "+p.sudoErr.Error()), 1) + "\n")
	}
	// The question or verdict below the list must stay on screen: the
	// list gets the rows that are left, problems first.
	decision := d.String()
	room := h - strings.Count(b.String(), "\n") - strings.Count(decision, "\n")
	b.WriteString(fitChecks(st, blocks, p.checks, room))
	b.WriteString(decision)
	return b.String()
}

// detailLines is every check with its summary and fix whole, wrapped to
// w columns, for the details view.
func (p *preflightScreen) detailLines(st styles, w int) []string {
	tw := max(w-6, 20)
	var b strings.Builder
	for _, c := range p.checks {
		b.WriteString(indent(checkGlyph(st, c.Status)+" "+st.Bold.Render(c.ID), 1) + "\n")
		b.WriteString(indent(wrap(c.Summary, tw), 3) + "\n")
		if c.Fix != "" {
			b.WriteString(indent(st.Dim.Render(wrap("fix: "+c.Fix, tw)), 3) + "\n")
		}
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// hanging indents every line of s after the first by n columns.
func hanging(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat(" ", n))
}

// fitChecks lays the check blocks out in at most room lines. When they do
// not all fit, failures come first, then warnings, then the rest, and a
// last line says how many are not shown.
func fitChecks(st styles, blocks []string, checks []steps.Check, room int) string {
	total := 0
	for _, blk := range blocks {
		total += strings.Count(blk, "\n") + 1
	}
	switch {
	case total <= room && len(blocks) > 0:
		return strings.Join(blocks, "\n") + "\n"
	case total <= room || room <= 0:
		// No room at all: the question below matters more.
		return ""
	}
	rank := func(i int) int {
		if i >= len(checks) {
			return 3
		}
		switch checks[i].Status {
		case steps.StatusFail:
			return 0
		case steps.StatusWarn:
			return 1
		}
		return 2
	}
	order := make([]int, len(blocks))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rank(order[a]) < rank(order[b]) })
	var out []string
	used, shown := 0, 0
	for _, i := range order {
		n := strings.Count(blocks[i], "\n") + 1
		if used+n > room-1 {
			// A block that does not fit whole shows its first line.
			if used < room-1 {
				out = append(out, strings.SplitN(blocks[i], "\n", 2)[0])
				used++
				shown++
			}
			continue
		}
		out = append(out, blocks[i])
		used += n
		shown++
	}
	if hidden := len(blocks) - shown; hidden > 0 {
		out = append(out, indent(st.Dim.Render("… "+itoa(hidden)+" more not shown: d shows every check in full"), 2))
	}
	return strings.Join(out, "\n") + "\n"
}

func checkGlyph(st styles, s steps.Status) string {
	style := st.Dim
	switch s {
	case steps.StatusOK:
		style = st.OK
	case steps.StatusWarn:
		style = st.Warn
	case steps.StatusFail:
		style = st.Fail
	}
	return style.Render(StatusGlyph(s, glyphSkip))
}

// hostKeyQuestion asks whether an unknown host's key is its own: the
// question of the install's preflight and of the reinstall's host key step.
func hostKeyQuestion(st styles, host string, hk engine.HostKey, w, tw int) string {
	var d strings.Builder
	d.WriteString(indent(st.Warn.Render(glyphWarn+" ")+st.Bold.Render("First connection to "+host+": is this its host key?"), 1) + "\n")
	key := hk.Type + " " + hk.Fingerprint
	if ansi.StringWidth(key)+3 > w {
		// The fingerprint is what the operator compares: never cut.
		key = hk.Type + "\n" + hk.Fingerprint
	}
	d.WriteString(indent(st.Code.Render(key), 3) + "\n")
	d.WriteString(indent(st.Dim.Render(wrap("Compare it with the console of your provider (Oracle: instance → Console connection, or the boot log). y trusts it and saves it to known_hosts.", tw-2)), 3) + "\n")
	return d.String()
}
