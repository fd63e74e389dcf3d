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
	var b strings.Builder
	tw := max(min(w-4, 100), 20)
	b.WriteString("\n")
	b.WriteString(indent(st.Header.Render("What will happen"), 1) + "\n")
	titles := make([]string, len(p.plan.Phases))
	for i, id := range p.plan.Phases {
		titles[i] = id.Title()
	}
	b.WriteString(indent(st.Accent.Render(strings.Join(titles, " → ")), 2) + "\n")
	for _, d := range p.plan.Decisions {
		b.WriteString(indent("• "+st.Bold.Render(d.What), 2) + "\n")
		b.WriteString(indent(st.Dim.Render(wrap(d.Why, tw-4)), 4) + "\n")
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
	b.WriteString("\n")
	if p.showCommand {
		b.WriteString(indent(st.Header.Render("The exact command"), 1) + "\n")
		// Broken only at spaces, with " \" continuations: it copies whole.
		b.WriteString(indent(commandBlock(st, p.plan.Command(), tw-2, 0), 2) + "\n")
	} else {
		b.WriteString(indent(st.Dim.Render("c shows the exact nixos-anywhere command"), 1) + "\n")
	}
	return b.String()
}
