package ui

import (
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// phaseBlurbs say in one line what each phase does, for the welcome screen.
var phaseBlurbs = [][2]string{
	{"Connect", "log in, upload a temporary install key, read the machine's facts"},
	{"Kexec", "boot the NixOS installer in RAM (the old system stops here)"},
	{"Disko", "wipe, partition, format and mount the disk as the flake says"},
	{"Install", "build the system and run nixos-install; copy the host keys"},
	{"Reboot", "reboot, wait for the new system and check its host key"},
}

func welcomeView(st styles, wl Welcome, rehearsal bool, w, h int) string {
	var b strings.Builder
	tw := min(w-2, 76)
	b.WriteString("\n")
	b.WriteString(indent(st.Title.Render("Install NixOS onto a fresh VPS"), 1) + "\n\n")
	if rehearsal {
		b.WriteString(indent(st.Accent.Render(wrap("This is a REHEARSAL against a simulated Oracle A1 VPS: every screen is real, nothing real is touched.", tw)), 1) + "\n\n")
	}
	b.WriteString(indent(wrap("bigbang checks the target and your flake first, shows what it will do and which disk it wipes, and asks you to type the host before anything changes.", tw), 1) + "\n\n")
	for i, p := range phaseBlurbs {
		line := st.Accent.Render(itoa(i+1)+". ") + st.Bold.Render(padRight(p[0], 8)) + " " + p[1]
		b.WriteString(indent(line, 2) + "\n")
	}
	b.WriteString("\n")
	flake := wl.Flake
	if flake == "" {
		flake = ".#vps-arm"
	}
	b.WriteString(indent(st.Dim.Render("Flake   ")+st.Code.Render(flake), 1) + "\n")
	if _, name, err := steps.SplitFlake(flake); err == nil && !strings.Contains(wl.Found, "nixosConfigurations."+name) {
		b.WriteString(indent(st.Dim.Render("Config  ")+"nixosConfigurations."+name+st.Dim.Render(" (the preflight evaluates it)"), 1) + "\n")
	}
	if wl.Found != "" {
		b.WriteString(indent(st.Dim.Render("Found   ")+wl.Found, 1) + "\n")
	}
	if wl.Folder != "" {
		b.WriteString(indent(st.Dim.Render("Folder  ")+wl.Folder, 1) + "\n")
	}
	return b.String()
}
