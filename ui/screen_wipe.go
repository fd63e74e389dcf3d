package ui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// wipeCountdown is how long the operator has to change their mind after
// typing the host.
const wipeCountdown = 5

// wipeScreen is the last stop before the disk is wiped: it names the disk
// and the host, the operator types the host, and a countdown that any key
// stops follows.
type wipeScreen struct {
	host     string
	disks    []engine.Disk
	input    textinput.Model
	counting bool
	left     int
	gen      int
	err      string
	stopped  bool
	auto     bool
	// backup is the verified backup a reinstall restores from ("" for an
	// install): the confirmation names it.
	backup string
}

type (
	wipeTickMsg struct{ gen int }
	wipeTypeMsg struct{ rest string }
)

func newWipeScreen(host string, disks []engine.Disk, auto bool) wipeScreen {
	in := textinput.New()
	in.Prompt = "> "
	// No placeholder: without colour (NO_COLOR) a placeholder of the host
	// reads as the host already typed. The line above names the host.
	in.CharLimit = 255
	in.SetWidth(len(host) + 2)
	return wipeScreen{host: host, disks: disks, input: in, auto: auto}
}

func (s *wipeScreen) init() tea.Cmd { return s.input.Focus() }

// autoType types the host one key at a time, as --yes does.
func (s *wipeScreen) autoType() tea.Cmd {
	host := s.host
	return func() tea.Msg { return wipeTypeMsg{rest: host} }
}

func (s *wipeScreen) update(msg tea.Msg) (tea.Cmd, intent) {
	switch msg := msg.(type) {
	case wipeTypeMsg:
		if msg.rest == "" {
			return s.confirm()
		}
		r := []rune(msg.rest)
		s.input.SetValue(s.input.Value() + string(r[0]))
		s.input.CursorEnd()
		rest := string(r[1:])
		return tea.Tick(80*time.Millisecond, func(time.Time) tea.Msg { return wipeTypeMsg{rest: rest} }), intentNone
	case wipeTickMsg:
		if !s.counting || msg.gen != s.gen {
			return nil, intentNone
		}
		s.left--
		if s.left <= 0 {
			s.counting = false
			return nil, intentNext
		}
		return s.tick(), intentNone
	case tea.KeyPressMsg:
		if s.counting {
			// Any key stops the countdown.
			s.counting = false
			s.stopped = true
			s.gen++
			return s.input.Focus(), intentNone
		}
		switch msg.String() {
		case "esc":
			return nil, intentBack
		case "enter":
			return s.confirm()
		}
	}
	var cmd tea.Cmd
	s.input, cmd = s.input.Update(msg)
	return cmd, intentNone
}

func (s *wipeScreen) confirm() (tea.Cmd, intent) {
	if strings.TrimSpace(s.input.Value()) != s.host {
		s.err = "that is not the host; type " + s.host + " exactly to wipe it"
		return nil, intentNone
	}
	s.err = ""
	s.stopped = false
	s.counting = true
	s.left = wipeCountdown
	s.gen++
	s.input.Blur()
	return s.tick(), intentNone
}

func (s *wipeScreen) tick() tea.Cmd {
	gen := s.gen
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return wipeTickMsg{gen: gen} })
}

// view keeps the prompt and the countdown on screen however small the
// window: when the whole warning does not fit, the partitions fold into
// the disk's line, then the paragraph shortens; the host, the disk and
// the question always stay.
func (s *wipeScreen) view(st styles, w, h int) string {
	prompt := s.promptView(st, w)
	var out string
	for level := 0; level < 3; level++ {
		out = "\n" + indent(s.box(st, w, level), 1) + "\n\n" + prompt
		if strings.Count(out, "\n") <= h {
			break
		}
	}
	return out
}

// box is the red warning; level 0 is all of it, 1 folds the partitions,
// 2 also shortens the paragraph.
func (s *wipeScreen) box(st styles, w, level int) string {
	bw := max(min(w-4, 78), 30)
	var b strings.Builder
	b.WriteString(st.DangerHdr.Render("EVERYTHING ON THIS DISK WILL BE ERASED") + "\n\n")
	b.WriteString("Host  " + st.Bold.Render(s.host) + "\n")
	if len(s.disks) == 0 {
		b.WriteString(st.Fail.Render("Disk  the disk(s) of the flake's disko layout") + "\n")
	}
	for _, d := range s.disks {
		line := fmt.Sprintf("Disk  %s  %s", st.Fail.Bold(true).Render(d.Device), diskSize(d.Size))
		if d.Model != "" {
			line += "  " + d.Model
		}
		if level > 0 && len(d.Partitions) > 0 {
			line += st.Dim.Render(fmt.Sprintf("  %d partitions", len(d.Partitions)))
		}
		b.WriteString(wrap(line, bw-4) + "\n")
		if level > 0 {
			continue
		}
		for _, p := range d.Partitions {
			pl := fmt.Sprintf("      %-6s %9s", p.Name, steps.FormatBytes(p.Size))
			if p.FSType != "" {
				pl += "  " + p.FSType
			}
			if p.Mountpoint != "" {
				pl += "  mounted on " + p.Mountpoint
			}
			b.WriteString(st.Dim.Render(pl) + "\n")
		}
	}
	if s.backup != "" {
		b.WriteString("\n" + wrap("The data comes back from the backup "+s.backup+" after the install.", bw-4) + "\n")
	}
	if level < 2 {
		b.WriteString("\n" + wrap("The running system, its files and its partitions are gone for good once disko starts. There is no undo.", bw-4) + "\n")
	} else {
		b.WriteString(wrap("Gone for good once disko starts. No undo.", bw-4) + "\n")
	}
	return st.Danger.Width(bw).Render(strings.TrimRight(b.String(), "\n"))
}

// promptView is the question, or the countdown once it is answered.
func (s *wipeScreen) promptView(st styles, w int) string {
	bw := max(min(w-4, 78), 30)
	var out strings.Builder
	switch {
	case s.counting:
		out.WriteString(indent(wrap(st.Fail.Bold(true).Render(fmt.Sprintf("Wiping %s in %d…", s.host, s.left))+"  "+st.Dim.Render("press any key to stop"), max(w-2, 20)), 1) + "\n")
	default:
		if s.backup != "" {
			out.WriteString(indent(wrap("Type the host "+st.Bold.Render(s.host)+" to wipe it and restore "+s.backup+":", max(bw-2, 20)), 1) + "\n")
		} else {
			out.WriteString(indent(wrap("Type the host "+st.Bold.Render(s.host)+" to wipe it:", max(w-2, 20)), 1) + "\n")
		}
		out.WriteString(indent(s.input.View(), 1) + "\n")
		if s.err != "" {
			out.WriteString(indent(st.Fail.Render(wrap(glyphFail+" "+s.err, max(w-2, 20))), 1) + "\n")
		}
		if s.stopped {
			out.WriteString(indent(st.Dim.Render(wrap("Countdown stopped; nothing was changed. Enter starts it again, esc goes back.", max(w-2, 20))), 1) + "\n")
		}
	}
	return out.String()
}
