package ui

import (
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// nativeReport is a target this machine can build for: both choices of
// the RAM screen work.
func nativeReport() engine.Report {
	r := a1Report()
	r.LocalSystem = "aarch64-linux"
	r.LocalCanBuild = true
	r.LocalBuildNote = "this machine is aarch64-linux too"
	return r
}

// toBuild drives the model to the RAM and build screen with report r.
func toBuild(t *testing.T, m *model, r engine.Report) {
	t.Helper()
	m.cfg = m.target.apply(m.cfg)
	m.startPreflight()
	m.Update(preflightDoneMsg{gen: m.preflightGen, report: r})
	m.Update(key("enter"))
	if m.screen != screenBuild {
		t.Fatalf("after preflight: screen %v, want RAM and build; view:\n%s", m.screen, view(m))
	}
}

func typeText(m *model, s string) {
	for _, r := range s {
		m.Update(key(string(r)))
	}
}

func argvHas(p steps.Plan, flag, val string) bool {
	for i, a := range p.Argv {
		if a == flag && (val == "" || (i+1 < len(p.Argv) && p.Argv[i+1] == val)) {
			return true
		}
	}
	return false
}

// TestBuildBackAndChangeFollowsPlan: the exact keys — RAM/build →
// Tab (local) → Enter → esc → Tab (remote) → Enter — give a plan, a
// command and an install request that build on the VPS.
func TestBuildBackAndChangeFollowsPlan(t *testing.T) {
	m := testModel(t, 100, 30)
	toBuild(t, m, nativeReport())
	m.Update(key("tab"))
	m.Update(key("enter"))
	if m.screen != screenPlan || m.thePlan.BuildOn != "local" || !argvHas(m.thePlan, "--build-on", "local") {
		t.Fatalf("tab then enter: screen %v, plan builds %q, argv %v", m.screen, m.thePlan.BuildOn, m.thePlan.Argv)
	}
	m.Update(key("esc"))
	if m.screen != screenBuild {
		t.Fatalf("esc on the plan: screen %v", m.screen)
	}
	m.Update(key("tab"))
	if v := view(m); !strings.Contains(v, "(•) on the VPS") {
		t.Fatalf("the screen does not show the VPS chosen:\n%s", v)
	}
	m.Update(key("enter"))
	if m.screen != screenPlan {
		t.Fatalf("enter: screen %v, build error %v", m.screen, m.build.err)
	}
	if m.thePlan.BuildOn != "remote" || !argvHas(m.thePlan, "--build-on", "remote") || argvHas(m.thePlan, "--build-on", "local") {
		t.Errorf("the plan does not follow the screen: builds %q, argv %v", m.thePlan.BuildOn, m.thePlan.Argv)
	}
	m.plan.showCommand = true
	if flat := strings.Join(strings.Fields(view(m)), " "); !strings.Contains(flat, "--build-on remote") {
		t.Errorf("the exact command on the plan screen does not say --build-on remote:\n%s", view(m))
	}
	if m.planCfg.BuildOn == "local" || m.cfg.BuildOn == "local" {
		t.Errorf("a config still says local: plan %q, target %q", m.planCfg.BuildOn, m.cfg.BuildOn)
	}
}

// TestBuildRAMOverrideFollowsPlan: an edited RAM goes into the plan with
// --no-disko-deps, and taking the edit back takes both out; the build
// location shown stays the one that runs.
func TestBuildRAMOverrideFollowsPlan(t *testing.T) {
	m := testModel(t, 100, 30)
	toBuild(t, m, nativeReport())
	m.Update(key("e"))
	for range 4 {
		m.Update(key("backspace"))
	}
	m.build.ram.SetValue("")
	typeText(m, "1G")
	m.Update(key("enter"))
	v := view(m)
	if strings.Contains(v, "detected on the target") || !strings.Contains(v, "edited (was 24G)") {
		t.Errorf("after an edit the RAM screen still says detected:\n%s", v)
	}
	if !strings.Contains(v, "Way forward") {
		t.Errorf("at 1 GB the RAM screen offers no way forward:\n%s", v)
	}
	shown := m.build.buildOn()
	m.Update(key("enter"))
	if m.screen != screenPlan {
		t.Fatalf("enter: screen %v, err %v", m.screen, m.build.err)
	}
	if !argvHas(m.thePlan, "--no-disko-deps", "") || m.planCfg.RAM != "1G" {
		t.Errorf("1G: argv %v, RAM %q; want --no-disko-deps and RAM 1G", m.thePlan.Argv, m.planCfg.RAM)
	}
	if m.thePlan.BuildOn != shown {
		t.Errorf("the screen showed %s, the plan builds %s", shown, m.thePlan.BuildOn)
	}

	m.Update(key("esc"))
	m.Update(key("e"))
	m.build.ram.SetValue("24G")
	m.Update(key("enter"))
	m.Update(key("enter"))
	if m.screen != screenPlan {
		t.Fatalf("enter: screen %v, err %v", m.screen, m.build.err)
	}
	if argvHas(m.thePlan, "--no-disko-deps", "") || m.planCfg.RAM != "" || m.thePlan.BuildOn != m.build.buildOn() {
		t.Errorf("back at 24G: argv %v, RAM %q, screen %s; the old override stuck", m.thePlan.Argv, m.planCfg.RAM, m.build.buildOn())
	}
}

// TestBuildRefusesImpossibleLocal: a local build the screen says cannot
// work is refused with the reason, and the plan is not made.
func TestBuildRefusesImpossibleLocal(t *testing.T) {
	m := testModel(t, 100, 30)
	r := a1Report()
	r.LocalBuildNote = "no binfmt emulation for aarch64 is registered (/proc/sys/fs/binfmt_misc)"
	toBuild(t, m, r)
	if !m.build.remote {
		t.Fatal("the screen proposes a build this machine cannot do")
	}
	m.Update(key("tab"))
	m.Update(key("enter"))
	if m.screen != screenBuild {
		t.Fatalf("an impossible local build went on to screen %v", m.screen)
	}
	flat := strings.Join(strings.Fields(view(m)), " ")
	if !strings.Contains(flat, "cannot build here") || !strings.Contains(flat, "no binfmt emulation for aarch64") {
		t.Errorf("the refusal lacks its reason:\n%s", view(m))
	}
	m.Update(key("tab"))
	m.Update(key("enter"))
	if m.screen != screenPlan || m.thePlan.BuildOn != "remote" {
		t.Errorf("back on the VPS: screen %v, plan %q", m.screen, m.thePlan.BuildOn)
	}
}
