package engine

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
)

// Engine runs bigbang's workflows in a World.
type Engine struct {
	World World
	// RebootTimeout bounds the wait for the new system after the reboot
	// (--reboot-timeout); zero is sshexec's default.
	RebootTimeout time.Duration
	// Stall is the time without progress after which any phase is
	// reported stalled (zero: the runner's limits per phase).
	Stall time.Duration
	// Command is how the operator runs bigbang, for resume commands.
	Command string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// New returns an engine over w.
func New(w World) *Engine { return &Engine{World: w, Command: "bigbang"} }

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// LogPath is --log or the default transcript path, one of its own even
// for two runs started within the same second.
func (e *Engine) LogPath(cfg steps.Config) string {
	if cfg.Log != "" {
		return cfg.Log
	}
	p := e.World.LogPath(cfg.Target(), e.now())
	base := strings.TrimSuffix(p, ".log")
	for n := 2; ; n++ {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = fmt.Sprintf("%s-%d.log", base, n)
	}
}

// DialPolicy is how a dial treats the operator: the time limits and the
// questions a terminal can answer.
type DialPolicy struct {
	Timeout        time.Duration
	HashKnownHosts bool
	// Prompt asks about an unknown host key during the dial; nil: the key
	// is refused and noted, for the front end to ask about afterwards.
	Prompt sshexec.HostKeyPrompt
	// Passphrase asks for a key file's passphrase.
	Passphrase sshexec.PassphraseFunc
	// Approved is the fingerprint the operator approved after an earlier
	// dial: that key, and no other, is trusted and saved.
	Approved string
}

// SSHTarget is the target of bigbang's own connections, reached as
// nixos-anywhere's ssh reaches it with the plan's argv: the user as in its
// user@host, the port only when the plan passes -p (not for 22, so that a
// Port of the ssh configuration or of --ssh-option applies to both), the
// key, and the --ssh-option values.
func SSHTarget(cfg steps.Config) sshexec.Target {
	t := cfg.Target()
	st := sshexec.Target{Host: t.Host, User: t.User, Identity: cfg.Identity, Options: cfg.SSHOptions}
	if t.Port != 22 {
		st.Port = t.Port
	}
	// A run resumed after kexec meets the installer, which nixos-anywhere
	// (and so the plan) logs in to as root whatever user was given; the
	// installer kept the old system's host keys, so known_hosts still fits.
	if phases, err := steps.ParsePhases(cfg.Phases); err == nil && len(phases) > 0 && !slices.Contains(phases, steps.PhaseKexec) {
		st.User = "root"
	}
	return st
}

// dialOptions is the one builder of the options of a dial to the target.
func (e *Engine) dialOptions(cfg steps.Config, p DialPolicy) sshexec.Options {
	return sshexec.Options{
		Target:           SSHTarget(cfg),
		KnownHosts:       cfg.KnownHosts,
		AcceptNewHostKey: cfg.AcceptNewHostKey,
		HashKnownHosts:   p.HashKnownHosts,
		PromptHostKey:    p.Prompt,
		Passphrase:       p.Passphrase,
		ApprovedHostKey:  p.Approved,
		Timeout:          p.Timeout,
		AgentSocket:      e.World.AgentSocket,
	}
}
