package engine

import (
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/local"
)

// setBuild records the facts that decide whether this machine builds the
// target's system and the verdict they give, whatever the build location
// chosen: a preflight run with --build-on remote still says whether a
// local build would work. Facts that do not name this machine's system
// (a front end's or a test's local side) take the one bigbang runs on.
func (r *Report) setBuild(f local.BuildFacts) {
	if f.System == "" {
		f.System = r.LocalSystem
	}
	r.Build = f
	r.LocalCanBuild, r.LocalBuildNote = f.CanBuild(r.TargetSystem)
}

// buildSystem is the system a build makes: the flake's, else the target's.
func (r Report) buildSystem() string {
	if r.Flake != nil && r.Flake.Config.System != "" {
		return r.Flake.Config.System
	}
	return r.TargetSystem
}

// BuildCheck is the local.build check made again for cfg's build location
// and RAM, on the facts the preflight read: the wizard's RAM screen judges
// a changed choice with it, as the preflight would have judged the flag.
func (r Report) BuildCheck(cfg steps.Config) steps.Check {
	f := r.Build
	if f.System == "" {
		f.System = r.LocalSystem
	}
	return local.BuildCheck(cfg, r.buildSystem(), f)
}

// WithBuild is the report with its local.build check made again for cfg
// (BuildCheck), in the place of the preflight's.
func (r Report) WithBuild(cfg steps.Config) Report {
	c := r.BuildCheck(cfg)
	checks := make([]steps.Check, 0, len(r.Checks)+1)
	found := false
	for _, old := range r.Checks {
		if old.ID == local.IDBuild {
			old, found = c, true
		}
		checks = append(checks, old)
	}
	if !found {
		checks = append(checks, c)
	}
	r.Checks = checks
	return r
}
