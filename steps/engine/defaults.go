package engine

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
)

// Given says which target flags the operator gave: those are never
// replaced by a default.
type Given struct{ User, Port, Identity bool }

// Defaults fills in what the operator did not give, for a host given on
// the command line: first from the last install of that host (its
// receipt, when fromReceipt), then from the ssh client configuration. It
// returns one note per source used, for the target screen.
func (e *Engine) Defaults(ctx context.Context, cfg *steps.Config, given Given, fromReceipt bool) []string {
	if cfg.Host == "" {
		return nil
	}
	var notes []string
	before := *cfg
	if r, err := e.World.Receipts.Read(cfg.Target()); err == nil && fromReceipt {
		r.Prefill(cfg)
		if given.User {
			cfg.User = before.User
		}
		if given.Port {
			cfg.Port = before.Port
		}
		if cfg.User != before.User || cfg.Port != before.Port || cfg.Identity != before.Identity ||
			cfg.Flake != before.Flake || cfg.ExtraFiles != before.ExtraFiles || cfg.BuildOn != before.BuildOn {
			notes = append(notes, fmt.Sprintf("defaults from the last install of %s (%s)", cfg.Host, r.InstalledAt.Local().Format("2006-01-02 15:04")))
		}
	}
	d := steps.DefaultConfig()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	res, err := sshexec.Resolve(rctx, sshexec.Target{Host: cfg.Target().Host, Options: cfg.SSHOptions})
	if err != nil || !res.FromSSH {
		return notes
	}
	var from []string
	// ssh -G prints the local user name and port 22 when nothing is
	// configured: only other values come from the configuration.
	if cur, uerr := user.Current(); uerr == nil && !given.User && cfg.User == d.User && res.User != "" && res.User != cur.Username {
		cfg.User = res.User
		from = append(from, "user "+res.User)
	}
	if !given.Port && cfg.Port == d.Port && res.Port != 0 && res.Port != d.Port {
		cfg.Port = res.Port
		from = append(from, fmt.Sprintf("port %d", res.Port))
	}
	if !given.Identity && cfg.Identity == "" && res.IdentitiesOnly && len(res.IdentityFiles) > 0 {
		if _, serr := os.Stat(res.IdentityFiles[0]); serr == nil {
			cfg.Identity = res.IdentityFiles[0]
			from = append(from, "key "+res.IdentityFiles[0])
		}
	}
	if len(from) > 0 {
		notes = append(notes, "from the ssh configuration of "+cfg.Host+": "+strings.Join(from, ", "))
	}
	return notes
}
