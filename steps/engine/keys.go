package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/secrets"
)

// KeysReport is what `bigbang keys` found and did.
type KeysReport struct {
	// FlakeErr is why the flake could not be read: the default key path
	// is used and the sops checks are skipped.
	FlakeErr error
	// Path is the key in the extra-files tree, Target where it lands.
	Path, Target string
	Generated    bool
	ModeFixed    bool
	Key          *secrets.HostKey // nil when it cannot be read
	Checks       []steps.Check
}

// Blocking says whether a problem remains.
func (r KeysReport) Blocking() bool { return r.FlakeErr != nil || steps.CountBlocking(r.Checks) > 0 }

// Keys generates the host key of the extra-files tree when it is missing,
// checks it when present (fixMode says whether to make a key others can
// read 0600), and proves that it decrypts every sops file the flake uses.
func Keys(ctx context.Context, cfg steps.Config, fixMode func(path string, mode fs.FileMode) bool) (KeysReport, error) {
	flakePath, name, err := steps.SplitFlake(cfg.Flake)
	if err != nil {
		return KeysReport{}, err
	}
	var rep KeysReport
	var conf *flake.Config
	info, ferr := flake.Evaluate(ctx, cfg.Flake)
	if ferr != nil {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.FlakeErr = ferr
	} else {
		conf = &info.Config
	}
	rep.Path, rep.Target = local.HostKeyPath(cfg, conf)
	key, kerr := secrets.Inspect(rep.Path)
	if errors.Is(kerr, secrets.ErrMissing) {
		if key, kerr = secrets.Generate(rep.Path, "root@"+name); kerr != nil {
			return rep, fmt.Errorf("keys: %w: check that %s is writable", kerr, cfg.ExtraFiles)
		}
		rep.Generated = true
	}
	if kerr == nil && !key.ModeOK() && fixMode(rep.Path, key.Mode.Perm()) {
		if err := secrets.FixMode(rep.Path); err != nil {
			return rep, fmt.Errorf("keys: %w", err)
		}
		rep.ModeFixed = true
		key, kerr = secrets.Inspect(rep.Path)
	}
	if kerr == nil {
		rep.Key = key
	}
	rep.Checks = local.SecretChecks(ctx, cfg, flake.LocalDir(flakePath), conf)
	return rep, nil
}
