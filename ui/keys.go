package ui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// screenKeys is the key line of the current screen.
func screenKeys(m *model) [][2]string {
	help := [2]string{"?", "help"}
	switch m.screen {
	case screenWelcome:
		return [][2]string{{"enter", "start"}, {"q", "quit"}, help}
	case screenTarget:
		return [][2]string{{"enter", "next field"}, {"shift+tab", "back"}, {"esc", "welcome"}, {"f1", "help"}}
	case screenPreflight:
		return m.preflight.keys()
	case screenBuild:
		if m.build.editing {
			return [][2]string{{"enter", "done"}, {"esc", "cancel edit"}, {"f1", "help"}}
		}
		return [][2]string{{"enter", "plan"}, {"tab", "build on local/remote"}, {"e", "edit RAM"}, {"esc", "back"}, help}
	case screenPlan:
		return [][2]string{{"enter", "continue"}, {"c", "show command"}, {"esc", "back"}, help}
	case screenWipe:
		if m.wipe.counting {
			return [][2]string{{"any key", "stop"}}
		}
		return [][2]string{{"enter", "confirm"}, {"esc", "back"}, {"f1", "help"}}
	case screenProgress:
		if m.stopping {
			return [][2]string{{"stopping…", "the result follows"}, {"l", "full log"}}
		}
		if m.progress.stalled() {
			return [][2]string{{"w", "keep waiting"}, {"l", "log"}, {"c", "cancel"}, help}
		}
		return [][2]string{{"l", "full log"}, {"ctrl+c", "stop"}, help}
	case screenResult:
		return [][2]string{{"l", "full log"}, {"d", "all of it"}, {"q", "quit"}, help}
	case screenDrift:
		return m.rs.drift.keys()
	case screenBackup:
		return m.rs.backup.keys()
	case screenRestore:
		return m.rs.restore.keys()
	}
	return nil
}

// keyLine renders "key action · key action".
func keyLine(st styles, keys [][2]string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = st.Key.Render(k[0]) + " " + st.Footer.Render(k[1])
	}
	return strings.Join(parts, st.Footer.Render(" · "))
}

// helpText is what ? shows, per screen, after the keys that work everywhere.
var helpText = map[screen][][2]string{
	screenWelcome:   {{"enter", "start the wizard"}, {"q", "quit without changing anything"}},
	screenTarget:    {{"tab/enter", "next field"}, {"shift+tab", "previous field"}, {"esc", "back to the welcome screen"}},
	screenPreflight: {{"enter", "continue when nothing blocks"}, {"r", "run the checks again"}, {"y/n", "accept or refuse a new host key"}, {"s", "set up passwordless sudo"}, {"d", "every check with its fix in full"}, {"esc", "back to the target"}},
	screenBuild:     {{"tab", "switch between building on the VPS and here"}, {"e", "edit the RAM size"}, {"enter", "make the plan"}},
	screenPlan:      {{"c", "show or hide the exact nixos-anywhere command"}, {"enter", "go to the wipe warning"}},
	screenWipe:      {{"type the host", "confirms the wipe"}, {"any key", "stops the countdown"}, {"esc", "back to the plan"}},
	screenProgress:  {{"l", "open the full log (/ search, n next)"}, {"w", "keep waiting after a stall warning"}, {"c / ctrl+c", "stop the install (asks first)"}},
	screenResult:    {{"l", "open the full log"}, {"d", "the whole result, scrollable"}, {"q", "quit"}},
	screenDrift:     {{"enter", "go on to the preflight (when a reinstall is needed)"}, {"y/n", "accept or refuse a new host key"}, {"r", "read the layout again"}, {"esc", "back to the target"}, {"q", "quit"}},
	screenBackup:    {{"enter", "go on once the backup is verified"}, {"r", "back up again after a failure"}, {"q", "quit; nothing is wiped"}},
	screenRestore:   {{"l", "open the install's log"}, {"ctrl+c", "stop the restore (asks first)"}},
}

// helpView is the help of screen s; changed says what the wizard already
// changed on the target ("" when nothing has), so that the help never
// promises an untouched server where it is not.
func helpView(st styles, s screen, changed string, w, h int) string {
	var b strings.Builder
	b.WriteString(st.Header.Render("Keys on this screen") + "\n\n")
	rows := append([][2]string{}, helpText[s]...)
	rows = append(rows, [2]string{"?/f1", "this help"}, [2]string{"ctrl+c", "quit (during the install: asks first)"})
	kw := 0
	for _, r := range rows {
		kw = max(kw, ansi.StringWidth(r[0]))
	}
	for _, r := range rows {
		b.WriteString("  " + st.Key.Render(padRight(r[0], kw)) + "  " + r[1] + "\n")
	}
	switch {
	case s >= screenProgress:
		b.WriteString("\n" + st.Dim.Render(wrap("The install has started: the server is being changed. Stopping asks first and says what state it is left in.", min(w-2, 76))))
	case changed != "":
		b.WriteString("\n" + st.Dim.Render(wrap(changed+" Nothing else on the target changes before you type the host on the wipe warning.", min(w-2, 76))))
	default:
		b.WriteString("\n" + st.Dim.Render("Nothing on the target changes before you type the host on the wipe warning."))
	}
	return b.String()
}

// confirmQuitView asks before the install is stopped, saying what state
// the server is left in if it stops now (phase is the running phase; ""
// for the restore, which leaves the new system as it is).
func confirmQuitView(st styles, phase steps.PhaseID, restore bool, w, h int) string {
	tw := min(w-4, 76)
	var b strings.Builder
	if restore {
		b.WriteString(st.Warn.Bold(true).Render("Stop the restore?") + "\n\n")
		b.WriteString(wrap("NixOS is installed and the installer still runs: the restore stops where it is and nothing reboots. The backup is kept, and the result screen gives the resume that reboots and the command that restores it after the boot.", tw) + "\n")
	} else {
		ms := textout.Machine(phase)
		b.WriteString(st.Warn.Bold(true).Render("Stop the install?") + "\n\n")
		now := "nixos-anywhere will be stopped. "
		if phase != "" {
			now = "It is in the " + phase.Title() + " phase; nixos-anywhere will be stopped. "
		}
		b.WriteString(wrap(now+ms.State, tw) + "\n\n")
		b.WriteString(st.Header.Render("Safe") + "  " + wrap(ms.Safe, tw-6) + "\n")
		b.WriteString(st.Header.Render("Then") + "  " + wrap(ms.Do+" The result screen gives the resume command.", tw-6) + "\n")
	}
	b.WriteString("\n" + st.Key.Render("y") + " stop   " + st.Key.Render("n") + " keep going")
	// The answer keys stay on screen however small it is: what is cut is
	// the explanation, never the question.
	lines := strings.Split(b.String(), "\n")
	if len(lines) > h-1 {
		lines = append(lines[:max(h-3, 1)], "", lines[len(lines)-1])
	}
	return "\n" + indent(strings.Join(lines, "\n"), 2)
}

func padRight(s string, w int) string {
	if n := ansi.StringWidth(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

// wrap wraps plain or styled text to w columns at word boundaries.
func wrap(s string, w int) string {
	if w < 10 {
		w = 10
	}
	return ansi.Wrap(s, w, "")
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}
