package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/engine/enginetest"
	"github.com/bigbang-nix/bigbang/steps/local"
)

// TestPreflightBuildVerdictIgnoresBuildOn: a preflight run with
// --build-on remote still says whether this machine could build the
// system (the RAM screen offers the local build from it), and a changed
// choice is judged again on the same facts: local passes with emulation
// in nix.conf and is blocked without it.
func TestPreflightBuildVerdictIgnoresBuildOn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
		can   bool
		local steps.Status
	}{
		{"emulation in nix.conf", []string{"aarch64-linux"}, true, steps.StatusOK},
		{"no emulation", nil, false, steps.StatusFail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, cfg := enginetest.A1World(t, t.TempDir())
			w.Local.Build = local.BuildFacts{System: "x86_64-linux", ExtraPlatforms: tc.extra}
			w.Local.Checks = append(w.Local.Checks, local.BuildCheck(cfg, "aarch64-linux", w.Local.Build))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rep, err := engine.New(w.World()).Preflight(ctx, cfg, engine.DialPolicy{}, func(steps.Event) {})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.BuildOn != "remote" || rep.LocalCanBuild != tc.can {
				t.Fatalf("--build-on %s: LocalCanBuild %v (%s), want %v", cfg.BuildOn, rep.LocalCanBuild, rep.LocalBuildNote, tc.can)
			}
			before := find(rep.Checks, local.IDBuild)
			if before.Status != steps.StatusOK {
				t.Fatalf("the remote build's check is %+v, want ok", before)
			}
			cfg.BuildOn = "local"
			again := rep.WithBuild(cfg)
			c := find(again.Checks, local.IDBuild)
			if c.Status != tc.local || rep.BuildCheck(cfg) != c {
				t.Errorf("switched to local: local.build %+v, want %s", c, tc.local)
			}
			if tc.local == steps.StatusFail && !strings.Contains(c.Summary, "cannot build aarch64-linux") {
				t.Errorf("the refusal does not say why: %+v", c)
			}
			if len(again.Checks) != len(rep.Checks) || find(rep.Checks, local.IDBuild) != before {
				t.Errorf("WithBuild added a check or changed the report it was called on: %d → %d checks", len(rep.Checks), len(again.Checks))
			}
		})
	}
}

func find(cs []steps.Check, id string) steps.Check {
	for _, c := range cs {
		if c.ID == id {
			return c
		}
	}
	return steps.Check{}
}
