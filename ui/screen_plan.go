package ui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// planScreen shows everything that will happen.
type planScreen struct {
	plan        steps.Plan
	disks       []engine.Disk
	log         string
	showCommand bool
}

func newPlanScreen(p steps.Plan, r engine.Report, log string) planScreen {
	return planScreen{plan: p, disks: r.Disks, log: log}
}

func (p *planScreen) update(msg tea.Msg) intent {
	k, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return intentNone
	}
	switch k.String() {
	case "c":
		p.showCommand = !p.showCommand
	case "enter":
		return intentNext
	case "esc":
		return intentBack
	}
	return intentNone
}

func (p *planScreen) view(st styles, w, h int) string {
	tw := max(min(w-4, 100), 20)
	var cmd string
	if p.showCommand {
		// Broken only at spaces, with " \" continuations; a word wider
		// than the block keeps a line of its own, whole up to the
		// window's edge: it copies whole.
		cmd = "\n" + indent(st.Header.Render("The exact command"), 1) + "\n" +
			indent(commandBlockRoom(st, p.plan.Command(), tw-2, 4, 0, w-2), 2) + "\n"
	} else {
		cmd = "\n" + indent(st.Dim.Render("c shows the exact nixos-anywhere command"), 1) + "\n"
	}
	// The command is what c asked for: when the window cannot hold it and
	// the reasons too, the reasons fold to their titles, then to a line
	// saying so.
	full := p.body(st, tw, true, true) + cmd
	if !p.showCommand || strings.Count(full, "\n") < h {
		return full
	}
	if v := p.body(st, tw, true, false) + cmd; strings.Count(v, "\n") < h {
		return v
	}
	return p.body(st, tw, false, false) + cmd
}

// body is the plan above the command: the phases, the decisions (with
// their reasons when why is set; the header says how to read folded
// reasons), the disks wiped and the log.
func (p *planScreen) body(st styles, tw int, decisions, why bool) string {
	var b strings.Builder
	b.WriteString("\n")
	head := st.Header.Render("What will happen")
	if !why {
		head += st.Dim.Render("  (c hides the command for the reasons)")
	}
	b.WriteString(indent(head, 1) + "\n")
	titles := make([]string, len(p.plan.Phases))
	for i, id := range p.plan.Phases {
		titles[i] = id.Title()
	}
	b.WriteString(indent(st.Accent.Render(strings.Join(titles, " → ")), 2) + "\n")
	for _, d := range p.plan.Decisions {
		if !decisions {
			break
		}
		b.WriteString(indent("• "+st.Bold.Render(d.What), 2) + "\n")
		if why {
			b.WriteString(indent(st.Dim.Render(wrap(d.Why, tw-4)), 4) + "\n")
		}
	}
	b.WriteString("\n" + indent(st.Header.Render("Wiped")+"  ", 1))
	if len(p.disks) == 0 {
		b.WriteString(st.Warn.Render("the disk(s) of the flake's disko layout (the target did not report them)") + "\n")
	} else {
		for i, d := range p.disks {
			line := st.Fail.Render(d.Device) + " " + diskSize(d.Size)
			if d.Model != "" {
				line += " " + d.Model
			}
			if i > 0 {
				line = "       " + line
			}
			b.WriteString(line + "\n")
		}
	}
	if p.log != "" {
		b.WriteString(indent(st.Header.Render("Log")+"    "+st.Dim.Render(p.log), 1) + "\n")
	}
	return b.String()
}
