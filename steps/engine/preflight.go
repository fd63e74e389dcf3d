package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// Preflight checks the target and the flake for cfg: the local checks run
// while it logs in, then the target's facts are checked against what the
// flake expects. Every check goes to sink as soon as it is known. A host
// key known_hosts does not know is refused and reported (HostKeyNew) unless
// the policy prompts or approved it; the caller asks the operator and runs
// the preflight again with DialPolicy.Approved. The error is for what
// stopped the preflight itself (an interruption).
func (e *Engine) Preflight(ctx context.Context, cfg steps.Config, p DialPolicy, sink steps.Sink) (Report, error) {
	send := func(cs []steps.Check) {
		for _, c := range cs {
			sink(steps.Event{Time: time.Now(), Type: steps.EventCheck, Check: c})
		}
	}
	lc := make(chan Local, 1)
	go func() {
		l := e.World.Local.Local(ctx, cfg)
		send(l.Checks)
		lc <- l
	}()

	c, seen, err := e.dialNoting(ctx, cfg, p)
	lo := <-lc
	rep := Report{Checks: append([]steps.Check(nil), lo.Checks...), Flake: lo.Flake, FlakeSummary: lo.Summary}
	if ctx.Err() != nil {
		if c != nil {
			c.Close()
		}
		return rep, ctx.Err()
	}
	if err != nil {
		rep.HostKey = HostKey{Fingerprint: seen.Fingerprint, Type: seen.Type}
		if errors.Is(err, sshexec.ErrHostKeyUnknown) {
			rep.HostKey.Status = HostKeyNew
			return rep, nil
		}
		un := UnreachedChecks(err)
		switch {
		case errors.Is(err, sshexec.ErrHostKeyChangedSinceApproval):
			// Not a known_hosts entry to forget: nothing was saved. The
			// check blocks the install and says which two keys differ.
			un = remote.Unreached(remote.IDHostKey, "the host key changed between the two connections: nothing was saved, bigbang refuses to go on", err.Error())
		case errors.Is(err, sshexec.ErrHostKeyMismatch):
			rep.HostKey.Status = HostKeyChanged
		}
		send(un)
		rep.Checks = append(rep.Checks, un...)
		return rep, nil
	}
	defer c.Close()
	facts, err := c.Facts(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		summary, fix := "gathering the target's facts failed: "+err.Error(), "run again; if it persists, check that the login user's shell can run /bin/sh"
		var se *sshexec.Error
		if errors.As(err, &se) && se.Fix != "" {
			summary, fix = se.Summary, se.Fix
		}
		un := remote.Unreached(remote.IDOS, summary, fix)
		connected := remote.Checks(remote.Facts{}, steps.TargetExpect{}, c.CheckOptions())
		un[0], un[1] = connected[0], connected[1]
		send(un)
		rep.Checks = append(rep.Checks, un...)
		return rep, nil
	}
	rc := remote.Checks(facts, lo.Expect, rootKeyOptions(c.CheckOptions(), cfg, facts.IsInstaller()))
	if !runsKexec(cfg, facts.IsInstaller()) {
		// A container cannot take a new kernel, which only matters to
		// kexec: a run without it does not care.
		for i := range rc {
			if rc[i].ID == remote.IDContainer && rc[i].Status == steps.StatusFail {
				rc[i] = steps.Check{ID: remote.IDContainer, Status: steps.StatusSkip, Summary: rc[i].Summary + "; not a problem here: this run does not kexec"}
			}
		}
	}
	send(rc)
	var wiped []string
	for _, d := range lo.Expect.Disks {
		wiped = append(wiped, d.Device)
	}
	hk := c.HostKey()
	out := reportFromFacts(facts, append(rep.Checks, rc...), HostKey{Fingerprint: hk.Fingerprint, Type: hk.Type, Status: HostKeyKnown}, wiped)
	out.Flake, out.FlakeSummary = lo.Flake, lo.Summary
	out.setBuild(lo.Build)
	return out, nil
}

// rootKeyOptions adds to what the connection established what
// remote.root_keys needs of the run: the -i nixos-anywhere gets, whether
// it is the key the target accepted, whether the run kexecs.
func rootKeyOptions(o remote.CheckOptions, cfg steps.Config, installer bool) remote.CheckOptions {
	o.Identity, o.Host = cfg.Identity, cfg.Host
	o.SkipKexec = !runsKexec(cfg, installer) && !installer
	if cfg.Identity != "" && o.AuthKeyFile != "" {
		o.IdentityAccepted = sameFile(cfg.Identity, o.AuthKeyFile)
	}
	return o
}

// sameFile reports whether two paths name one file.
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// runsKexec says whether the run will kexec: not when --phases leaves it
// out, nor when the target already runs the installer.
func runsKexec(cfg steps.Config, installer bool) bool {
	phases, err := steps.ParsePhases(cfg.Phases)
	if err == nil && len(phases) > 0 {
		return slices.Contains(phases, steps.PhaseKexec)
	}
	return !installer
}

// dialNoting dials the target: with no prompt in the policy, a host key
// known_hosts does not know is refused but noted (seen is it), for the
// operator to compare on the screen.
func (e *Engine) dialNoting(ctx context.Context, cfg steps.Config, p DialPolicy) (Conn, sshexec.HostKeyInfo, error) {
	var mu sync.Mutex
	var key sshexec.HostKeyInfo
	prompt := p.Prompt
	p.Prompt = func(ctx context.Context, k sshexec.HostKeyInfo) (bool, error) {
		mu.Lock()
		key = k
		mu.Unlock()
		if prompt != nil {
			return prompt(ctx, k)
		}
		return false, nil
	}
	c, err := e.World.Dialer.Dial(ctx, e.dialOptions(cfg, p))
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		key = c.HostKey()
	}
	return c, key, err
}

// Connect logs in to the target for the commands that only read (status,
// drift, the reinstall's steps), with the error naming the host.
func (e *Engine) Connect(ctx context.Context, cfg steps.Config, p DialPolicy) (Conn, error) {
	c, err := e.World.Dialer.Dial(ctx, e.dialOptions(cfg, p))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return c, nil
}

// SetupSudo installs the passwordless sudo line on the target with the
// password typed once; the bytes are zeroed after.
func (e *Engine) SetupSudo(ctx context.Context, cfg steps.Config, p DialPolicy, password []byte) error {
	defer clear(password)
	cfg.AcceptNewHostKey = false
	c, err := e.World.Dialer.Dial(ctx, e.dialOptions(cfg, p))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SetupSudo(ctx, password)
}

// UnreachedChecks turns a failed dial into the remote checks: a host key
// problem fails remote.hostkey, anything else (network, handshake, login)
// fails remote.auth. The words are sshexec's, which name both keys of a
// mismatch and the fix.
func UnreachedChecks(err error) []steps.Check {
	summary, fix := err.Error(), ""
	var se *sshexec.Error
	if errors.As(err, &se) {
		summary, fix = se.Summary, se.Fix
	}
	if fix == "" {
		fix = "check the host, port and key, then run again"
	}
	id := remote.IDAuth
	for _, hk := range []error{sshexec.ErrHostKeyMismatch, sshexec.ErrHostKeyUnknown, sshexec.ErrHostKeyRevoked, sshexec.ErrKnownHosts} {
		if errors.Is(err, hk) {
			id = remote.IDHostKey
		}
	}
	return remote.Unreached(id, summary, fix)
}

// UnknownKeyChecks are the remote checks of a target whose host key
// known_hosts does not know, for the front ends that cannot ask: the host
// key check blocks (a script must have said yes beforehand with
// --accept-new-host-key), the others were not run.
func UnknownKeyChecks(t steps.Target, k HostKey) []steps.Check {
	scan := "ssh-keyscan " + steps.ShellQuote(t.Host)
	if t.Port != 0 && t.Port != 22 {
		scan = fmt.Sprintf("ssh-keyscan -p %d %s", t.Port, steps.ShellQuote(t.Host))
	}
	return remote.Unreached(remote.IDHostKey, fmt.Sprintf("the host key of %s is not known: %s %s", t.Host, k.Type, k.Fingerprint),
		"compare the fingerprint with the one in the provider's console (or "+scan+" on a trusted network), then run again with --accept-new-host-key")
}

// Refusal is the error of a preflight that found blocking problems; the
// checks themselves were sent as events.
type Refusal struct{ Checks []steps.Check }

func (r *Refusal) Error() string {
	var blocking []string
	for _, c := range r.Checks {
		if c.Blocking() {
			blocking = append(blocking, fmt.Sprintf("%s (%s; fix: %s)", c.ID, c.Summary, c.Fix))
		}
	}
	return fmt.Sprintf("the preflight found %d problem(s) that block the install, and nothing was started: %s",
		len(blocking), strings.Join(blocking, "; "))
}
