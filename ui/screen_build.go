package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// buildScreen asks for the RAM (prefilled from the target) and where to
// build.
type buildScreen struct {
	report  engine.Report
	ram     textinput.Model
	editing bool
	remote  bool
	fromCfg bool
	err     error

	initialRAM, initialBuildOn string
}

func newBuildScreen(cfg steps.Config, r engine.Report) buildScreen {
	in := textinput.New()
	in.Prompt = ""
	in.CharLimit = 12
	val := cfg.RAM
	if val == "" && r.TargetRAM > 0 {
		val = ramString(r.TargetRAM)
	}
	in.SetValue(val)
	b := buildScreen{report: r, ram: in, fromCfg: cfg.RAM != ""}
	switch cfg.BuildOn {
	case "local":
		b.remote = false
	case "remote":
		b.remote = true
	default:
		b.remote = b.ramBytes() >= steps.RemoteBuildMinRAM || b.ramBytes() == 0
	}
	b.initialRAM, b.initialBuildOn = b.ramValue(), b.buildOn()
	if cfg.RAM != "" {
		b.initialRAM = ""
	}
	if cfg.BuildOn != "auto" && cfg.BuildOn != "" {
		b.initialBuildOn = ""
	}
	return b
}

// ramString prints bytes the way --ram takes them, in GiB with at most one
// decimal ("23.4G").
func ramString(n int64) string {
	g := float64(n) / float64(steps.GiB)
	s := fmt.Sprintf("%.1f", g)
	return strings.TrimSuffix(s, ".0") + "G"
}

func (b *buildScreen) ramBytes() int64 {
	n, err := steps.ParseRAM(b.ram.Value())
	if err != nil {
		return 0
	}
	return n
}

func (b *buildScreen) ramValue() string { return strings.TrimSpace(b.ram.Value()) }

func (b *buildScreen) buildOn() string {
	if b.remote {
		return "remote"
	}
	return "local"
}

func (b *buildScreen) update(msg tea.Msg) intent {
	k, isKey := msg.(tea.KeyPressMsg)
	if b.editing {
		if isKey {
			switch k.String() {
			case "enter", "esc":
				if _, err := steps.ParseRAM(b.ram.Value()); err != nil {
					b.err = err
					return intentNone
				}
				b.err = nil
				b.editing = false
				b.ram.Blur()
				return intentNone
			}
		}
		b.ram, _ = b.ram.Update(msg)
		return intentNone
	}
	if !isKey {
		return intentNone
	}
	switch k.String() {
	case "tab", "left", "right", "h", "space", "shift+tab":
		b.remote = !b.remote
	case "e":
		b.editing = true
		b.ram.Focus()
		b.ram.CursorEnd()
	case "esc":
		return intentBack
	case "enter":
		if _, err := steps.ParseRAM(b.ram.Value()); err != nil {
			b.err = err
			return intentNone
		}
		return intentNext
	}
	return intentNone
}

func (b *buildScreen) view(st styles, w, h int) string {
	var s strings.Builder
	tw := min(w-4, 80)
	r := b.report
	s.WriteString("\n")
	src := "detected on the target"
	if b.fromCfg {
		src = "given with --ram"
	}
	field := b.ram.View()
	if !b.editing {
		field = st.Bold.Render(b.ram.Value())
	}
	s.WriteString(indent(st.Header.Render("Target RAM  ")+field+"  "+st.Dim.Render(src+" · e to edit"), 1) + "\n")
	if b.err != nil {
		s.WriteString(indent(st.Fail.Render(glyphFail+" "+wrap(b.err.Error(), tw-2)), 1) + "\n")
	}
	sys := r.TargetSystem
	if sys == "" {
		sys = "unknown"
	}
	s.WriteString(indent(st.Dim.Render(fmt.Sprintf("Target %s, %d CPUs, %s · this machine %s", sys, r.CPUs, orUnknown(r.TargetOS), orUnknown(r.LocalSystem))), 1) + "\n\n")

	ram := b.ramBytes()
	s.WriteString(indent(st.Header.Render("Where to build the system"), 1) + "\n")
	opt := func(on bool, label, why string) {
		mark := st.Dim.Render("( )")
		if on {
			mark = st.Selected.Render("(•)")
			label = st.Selected.Render(label)
		}
		s.WriteString(indent(mark+" "+label, 2) + "\n")
		s.WriteString(indent(st.Dim.Render(wrap(why, tw-4)), 6) + "\n")
	}
	remoteWhy := "the VPS builds its own system after kexec; nothing heavy runs here"
	if ram >= steps.RemoteBuildMinRAM {
		if r.LocalSystem != "" && r.TargetSystem != "" && r.LocalSystem != r.TargetSystem {
			remoteWhy = fmt.Sprintf("recommended: this machine is %s, the VPS is %s with %s", arch(r.LocalSystem), arch(r.TargetSystem), steps.FormatBytes(ram))
		} else {
			remoteWhy = fmt.Sprintf("recommended: the VPS has %s, more than the 1.5 GiB the installer needs, so it can build too", steps.FormatBytes(ram))
		}
	} else if ram > 0 {
		remoteWhy = fmt.Sprintf("not recommended: %s leaves too little room next to the 1.5 GiB installer", steps.FormatBytes(ram))
	}
	localWhy := "needs Nix here and a builder for " + orUnknown(r.TargetSystem)
	switch {
	case r.LocalCanBuild && r.LocalBuildNote != "":
		localWhy += ": this machine can build it (" + r.LocalBuildNote + ")"
	case r.LocalCanBuild:
		localWhy += ": this machine can build it"
	case r.LocalBuildNote != "":
		localWhy += ": this machine (" + orUnknown(r.LocalSystem) + ") cannot: " + r.LocalBuildNote
	case r.LocalSystem != "" && r.TargetSystem != "" && r.LocalSystem != r.TargetSystem:
		localWhy += fmt.Sprintf(": this machine is %s and has no binfmt emulation for %s, so it cannot", r.LocalSystem, r.TargetSystem)
	}
	opt(b.remote, "on the VPS (--build-on remote)", remoteWhy)
	opt(!b.remote, "on this machine (--build-on local)", localWhy)
	return s.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// arch is the CPU part of a Nix system ("aarch64" of "aarch64-linux").
func arch(sys string) string {
	if i := strings.IndexByte(sys, '-'); i > 0 {
		return sys[:i]
	}
	return sys
}
