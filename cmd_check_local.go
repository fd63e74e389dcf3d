package main

import (
	"context"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/local"
)

// The local side of bigbang check: nix, the flake, git, the build, the
// operator's key, the host key, its sops proof and the lockout check.
func init() {
	localChecks = func(ctx context.Context, cfg *steps.Config) ([]steps.Check, steps.TargetExpect, any) {
		return local.Run(ctx, *cfg)
	}
}
