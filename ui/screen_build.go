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
// build. It keeps the config it was opened with (base) and never changes
// it: the plan's config is derived from base and what the screen shows
// every time the plan is made, so going back and changing a choice
// cannot leave an earlier choice in the plan.
type buildScreen struct {
	base    steps.Config
	report  engine.Report
	ram     textinput.Model
	editing bool
	remote  bool
	// toggled says the operator chose the build location; until then it
	// follows the RAM.
	toggled bool
	fromCfg bool
	err     error

	// prefilled is the RAM the field opened with; initialRAM and
	// initialBuildOn are the values that are not flags ("" when the
	// flags gave them).
	prefilled                  string
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
	b := buildScreen{base: cfg, report: r, ram: in, fromCfg: cfg.RAM != "", prefilled: strings.TrimSpace(val)}
	switch cfg.BuildOn {
	case "local":
		b.remote = false
	case "remote":
		b.remote = true
	default:
		b.remote = b.autoRemote()
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

// autoRemote is the build location the screen proposes for the RAM in the
// field: on the VPS when it has room (or the RAM is not known), or when
// this machine cannot build at all.
func (b *buildScreen) autoRemote() bool {
	ram := b.ramBytes()
	return ram >= steps.RemoteBuildMinRAM || ram == 0 || b.localCannot() != ""
}

// localCannot is why this machine cannot build the system, as the screen
// says it; "" when it can or nothing says it cannot.
func (b *buildScreen) localCannot() string {
	r := b.report
	switch {
	case r.LocalCanBuild:
		return ""
	case r.LocalBuildNote != "":
		return "this machine (" + orUnknown(r.LocalSystem) + ") cannot build " + orUnknown(r.TargetSystem) + ": " + r.LocalBuildNote
	case r.LocalSystem != "" && r.TargetSystem != "" && r.LocalSystem != r.TargetSystem:
		return fmt.Sprintf("this machine is %s and has no binfmt emulation for %s, so it cannot build the system", r.LocalSystem, r.TargetSystem)
	}
	return ""
}

// config is the plan's config: the one the screen was opened with, and
// only what the operator changed here as flags, so that the plan gives
// its own reasons for the defaults.
func (b *buildScreen) config() steps.Config {
	cfg := b.base
	if v := b.ramValue(); v != b.initialRAM {
		cfg.RAM = v
	}
	if bo := b.buildOn(); bo != b.initialBuildOn {
		cfg.BuildOn = bo
	}
	return cfg
}

// makePlan makes the plan of what the screen shows, fresh from the
// screen's state: a choice the screen says cannot work is refused with
// the reason, and when the plan's own choice would differ from the one
// shown (an edited RAM moves nixos-anywhere's default) the shown one is
// passed as a flag.
func (b *buildScreen) makePlan(env steps.PlanEnv) (steps.Plan, steps.Config, error) {
	if _, err := steps.ParseRAM(b.ram.Value()); err != nil {
		return steps.Plan{}, steps.Config{}, err
	}
	if why := b.localCannot(); !b.remote && why != "" {
		return steps.Plan{}, steps.Config{}, fmt.Errorf("cannot build here: %s; choose on the VPS (tab), or set up emulation (%s) and run the preflight again (esc, r)", why, emulationHint(b.report.TargetSystem))
	}
	cfg := b.config()
	// The preflight's local.build check judged the build location it was
	// run with; the one shown here is judged again on the same facts.
	judged := cfg
	judged.BuildOn = b.buildOn()
	if c := b.report.BuildCheck(judged); !b.remote && c.Blocking() {
		return steps.Plan{}, steps.Config{}, fmt.Errorf("cannot build here: %s; choose on the VPS (tab), or %s", c.Summary, c.Fix)
	}
	p, err := steps.NewPlan(cfg, env)
	if err == nil && p.BuildOn != b.buildOn() {
		cfg.BuildOn = b.buildOn()
		p, err = steps.NewPlan(cfg, env)
	}
	if err != nil {
		return steps.Plan{}, steps.Config{}, err
	}
	return p, cfg, nil
}

// emulationHint says how a machine gets to build for sys.
func emulationHint(sys string) string {
	sys = orUnknown(sys)
	return "on NixOS boot.binfmt.emulatedSystems = [ \"" + sys + "\" ]; elsewhere qemu-user binfmt and extra-platforms = " + sys + " in nix.conf"
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
				if !b.toggled && (b.base.BuildOn == "" || b.base.BuildOn == "auto") {
					b.remote = b.autoRemote()
				}
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
		b.toggled = true
		b.err = nil
	case "e":
		b.editing = true
		b.ram.Focus()
		b.ram.CursorEnd()
	case "esc":
		return intentBack
	case "enter":
		// The root makes the plan (makePlan) and shows its refusal here.
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
	switch {
	case b.ramValue() != b.prefilled && b.prefilled != "":
		src = "edited (was " + b.prefilled + ")"
	case b.ramValue() != b.prefilled:
		src = "edited"
	case b.fromCfg:
		src = "given with --ram"
	case b.prefilled == "":
		src = "not reported by the target"
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
	if ram > 0 && ram < steps.RemoteBuildMinRAM {
		// Neither choice is comfortable here: say what still works.
		way := fmt.Sprintf("With %s the plan passes --no-disko-deps to save memory. Build here if this machine can; ", steps.FormatBytes(ram))
		if b.localCannot() != "" {
			way = fmt.Sprintf("With %s the plan passes --no-disko-deps to save memory. This machine cannot build the system, so: ", steps.FormatBytes(ram))
		}
		way += "building on the VPS may still fit (enter goes on; watch the install's RAM), or give this machine emulation (" + emulationHint(r.TargetSystem) + ") and run the preflight again, or pick a shape with more RAM."
		s.WriteString("\n" + indent(st.Header.Render("Way forward"), 1) + "\n")
		s.WriteString(indent(wrap(way, tw-2), 2) + "\n")
	}
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
