package ui

import (
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
)

// preflightScreen is the live checklist.
type preflightScreen struct {
	cfg     steps.Config
	checks  []steps.Check
	running bool
	started time.Time
	report  Report
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

func (p *preflightScreen) done(r Report, err error) {
	p.running = false
	p.report, p.err = r, err
	for _, c := range r.Checks {
		p.add(c)
	}
	p.askHostKey = r.HostKey.Status == HostKeyNew && !p.cfg.AcceptNewHostKey
	p.hostKeyChanged = r.HostKey.Status == HostKeyChanged
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
		return [][2]string{{"enter", "continue"}, {"r", "check again"}, {"esc", "back"}, {"?", "help"}}
	}
	keys := [][2]string{{"r", "check again"}, {"esc", "back"}}
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
	for _, c := range p.checks {
		b.WriteString(indent(checkGlyph(st, c.Status)+" "+c.Summary, 2) + "\n")
		if c.Fix != "" && (c.Status == steps.StatusWarn || c.Status == steps.StatusFail) {
			fix := wrap(c.Fix, tw-4)
			b.WriteString(indent(st.Dim.Render(fix), 4) + "\n")
		}
	}
	if p.running && len(p.checks) == 0 {
		b.WriteString(indent(st.Dim.Render("connecting…"), 2) + "\n")
	}
	b.WriteString("\n")
	switch {
	case p.err != nil:
		b.WriteString(indent(st.Fail.Render(glyphFail+" ")+wrap(p.err.Error(), tw-2), 1) + "\n")
	case p.hostKeyChanged:
		b.WriteString(indent(st.Fail.Bold(true).Render(glyphFail+" The host key of "+p.cfg.Host+" has CHANGED."), 1) + "\n")
		b.WriteString(indent(wrap("known_hosts pins another key for this host; it may be a different machine. bigbang refuses to go on. If you rebuilt the VPS, remove the old entry with: ssh-keygen -R "+steps.ShellQuote(p.cfg.Host), tw), 3) + "\n")
		b.WriteString(indent(st.Dim.Render("now: "+p.report.HostKey.Fingerprint), 3) + "\n")
	case p.askHostKey:
		b.WriteString(indent(st.Warn.Render(glyphWarn+" ")+st.Bold.Render("First connection to "+p.cfg.Host+": is this its host key?"), 1) + "\n")
		b.WriteString(indent(st.Code.Render(p.report.HostKey.Type+" "+p.report.HostKey.Fingerprint), 3) + "\n")
		b.WriteString(indent(st.Dim.Render(wrap("Compare it with the console of your provider (Oracle: instance → Console connection, or the boot log). y trusts it and saves it to known_hosts.", tw-2)), 3) + "\n")
	case p.askingPassword:
		b.WriteString(indent(wrap("bigbang will add the line '"+p.cfg.User+" ALL=(ALL) NOPASSWD:ALL' to /etc/sudoers.d/90-nixos-anywhere on the target. The password is used once and never stored or logged.", tw), 1) + "\n\n")
		b.WriteString(indent(p.password.View(), 1) + "\n")
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
		b.WriteString(indent(msg, 1) + "\n")
	default:
		n := steps.CountBlocking(p.checks)
		b.WriteString(indent(st.Fail.Render(glyphFail+" "+itoa(n)+" problem(s) block the install.")+" Fix them, then press r to check again.", 1) + "\n")
		if p.offerSudo {
			b.WriteString(indent(st.Accent.Render("s")+" sets up passwordless sudo for "+p.cfg.User+" (you type the password once).", 1) + "\n")
		}
	}
	if p.sudoErr != nil {
		b.WriteString(indent(st.Fail.Render(glyphFail+" sudo setup: "+p.sudoErr.Error()), 1) + "\n")
	}
	return b.String()
}

func checkGlyph(st styles, s steps.Status) string {
	switch s {
	case steps.StatusOK:
		return st.OK.Render(glyphOK)
	case steps.StatusWarn:
		return st.Warn.Render(glyphWarn)
	case steps.StatusFail:
		return st.Fail.Render(glyphFail)
	}
	return st.Dim.Render(glyphSkip)
}
