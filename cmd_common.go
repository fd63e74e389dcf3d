package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/ui"
)

// What the commands that log in to the target (check, status, drift,
// reinstall) share: the validation of the target flags, the dial with the
// host key prompt, the check list and the JSON-or-text report.

// commandContext is the command's context (a test calling Execute gives
// none: then a background one), cancelled when the command returns so that
// work started alongside the connection (nix eval, the local checks) stops
// with it.
func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithCancel(ctx)
}

// validateTarget checks the flags that name the target and the output
// style: what a command that only logs in needs, without the install's
// flake and extra-files checks.
func validateTarget(cfg *steps.Config) error {
	if err := steps.ValidateHost(cfg.Host); err != nil {
		return err
	}
	if err := steps.ValidateUser(cfg.User); err != nil {
		return err
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return fmt.Errorf("%w: port %d is out of range: give a port from 1 to 65535, usually 22", steps.ErrInvalidConfig, cfg.Port)
	}
	switch cfg.Output {
	case "", "tui", "plain", "json":
	default:
		return fmt.Errorf("%w: --output %q: use tui, plain or json", steps.ErrInvalidConfig, cfg.Output)
	}
	if cfg.Identity != "" {
		// A passphrase is asked on a terminal, so only the other key file
		// problems are usage errors here.
		if err := steps.CheckKeyFile(cfg.Identity); err != nil && !errors.Is(err, steps.ErrKeyEncrypted) {
			return err
		}
	}
	return nil
}

// connectFlags are the flags of the commands that log in to the target.
type connectFlags struct {
	timeout        time.Duration
	hashKnownHosts bool // only `check` offers --hash-known-hosts
}

// addConnectTimeout adds --connect-timeout.
func addConnectTimeout(cmd *cobra.Command, timeout *time.Duration) {
	cmd.Flags().DurationVar(timeout, "connect-timeout", sshexec.DefaultTimeout, "limit for connecting, the SSH handshake and logging in")
}

// interactive reports whether the operator can be asked: not with JSON
// output, and only when standard input is a terminal.
func interactive(cfg *steps.Config) bool {
	return cfg.Output != "json" && term.IsTerminal(os.Stdin.Fd())
}

// dialTarget logs in to the target. On a terminal an unknown host key is
// shown with its fingerprint and saved only when the operator says yes, and
// a key file's passphrase is asked for; otherwise an unknown key is refused
// unless --accept-new-host-key was given. A changed host key is always
// refused. The error is sshexec's, for remote.Unreached to classify.
func dialTarget(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, f connectFlags) (*sshexec.Client, error) {
	return sshexec.Dial(ctx, dialOptions(ctx, cmd, cfg, f, interactive(cfg)))
}

// connectTarget is dialTarget with the error naming the host.
func connectTarget(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, timeout time.Duration) (*sshexec.Client, error) {
	c, err := dialTarget(ctx, cmd, cfg, connectFlags{timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Host, err)
	}
	return c, nil
}

// sshTarget is the target of bigbang's own connections, reached as
// nixos-anywhere's ssh reaches it with the plan's argv: the user as in its
// user@host, the port only when the plan passes -p (not for 22, so that a
// Port of the ssh configuration or of --ssh-option applies to both), the
// key, and the --ssh-option values.
func sshTarget(cfg steps.Config) sshexec.Target {
	t := sshexec.Target{Host: cfg.Host, User: cfg.User, Identity: cfg.Identity, Options: cfg.SSHOptions}
	if cfg.Port != 22 {
		t.Port = cfg.Port
	}
	// A run resumed after kexec meets the installer, which nixos-anywhere
	// (and so the plan) logs in to as root whatever user was given; the
	// installer kept the old system's host keys, so known_hosts still fits.
	if phases, err := steps.ParsePhases(cfg.Phases); err == nil && len(phases) > 0 && !slices.Contains(phases, steps.PhaseKexec) {
		t.User = "root"
	}
	return t
}

// rebootTarget is sshTarget for the new system, which is logged in to as
// root.
func rebootTarget(cfg steps.Config) sshexec.Target {
	t := sshTarget(cfg)
	t.User = "root"
	return t
}

// targetDialOptions is the one builder of the options of a dial to the
// target: every command and the wizard start from it, so that they all
// honour the same flags.
func targetDialOptions(cfg steps.Config, prompt sshexec.HostKeyPrompt) sshexec.Options {
	return sshexec.Options{
		Target:           sshTarget(cfg),
		KnownHosts:       cfg.KnownHosts,
		AcceptNewHostKey: cfg.AcceptNewHostKey,
		PromptHostKey:    prompt,
	}
}

// dialOptions builds the SSH options of the commands that only log in
// (check, status, drift) from the flags. The port and user go to ssh only
// when given (or, for the user, when neither the ssh configuration nor
// --ssh-option names one), so that a Host block for the target still
// applies.
func dialOptions(ctx context.Context, cmd *cobra.Command, cfg *steps.Config, f connectFlags, interactive bool) sshexec.Options {
	o := targetDialOptions(*cfg, nil)
	o.HashKnownHosts, o.Timeout = f.hashKnownHosts, f.timeout
	t := &o.Target
	t.User, t.Port = "", 0
	if cmd.Flags().Changed("port") {
		t.Port = cfg.Port
	}
	if cmd.Flags().Changed("user") {
		t.User = cfg.User
	} else if r, err := sshexec.Resolve(ctx, *t); err == nil {
		if u, err := user.Current(); err != nil || r.User == u.Username {
			t.User = cfg.User // ssh's own fallback: the config named no user
		}
	}
	if interactive {
		errw := cmd.ErrOrStderr()
		in := bufio.NewReader(os.Stdin)
		o.PromptHostKey = func(_ context.Context, k sshexec.HostKeyInfo) (bool, error) {
			fmt.Fprintf(errw, "The host %s is not in your known_hosts.\nIts %s key fingerprint is %s.\n"+
				"Compare it with the one in your provider's console.\nTrust it and save it? [y/N] ", k.Address, k.Type, k.Fingerprint)
			line, err := in.ReadString('\n')
			if err != nil && line == "" {
				return false, err
			}
			return isYes(line), nil
		}
		o.Passphrase = func(file string, attempt int) ([]byte, error) {
			if attempt > 1 {
				fmt.Fprintln(errw, "Wrong passphrase, try again.")
			}
			fmt.Fprintf(errw, "Passphrase for %s: ", file)
			pp, err := term.ReadPassword(os.Stdin.Fd())
			fmt.Fprintln(errw)
			return pp, err
		}
	}
	return o
}

// isYes reads an answer to a [y/N] question.
func isYes(line string) bool {
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

// needsSudo says whether remote commands that need root go through sudo.
func needsSudo(c *sshexec.Client) bool { return c.Resolved.User != "root" }

// wrapSudo prefixes cmd with `sudo -n` when sudo is set.
func wrapSudo(cmd string, sudo bool) string {
	if sudo {
		return "sudo -n " + cmd
	}
	return cmd
}

// servedEd25519 returns the fingerprint of the machine's ed25519 host key:
// the one it proved on this connection when that is ed25519, else the one
// its public key file shows.
func servedEd25519(ctx context.Context, c *sshexec.Client) (string, error) {
	if c.HostKey.Type == "ssh-ed25519" {
		return c.HostKey.Fingerprint, nil
	}
	var out bytes.Buffer
	script := `cat /persistent/etc/ssh/ssh_host_ed25519_key.pub 2>/dev/null || cat /etc/ssh/ssh_host_ed25519_key.pub`
	if err := c.Run(ctx, "sh -c "+steps.ShellQuote(script), nil, &out, io.Discard); err != nil {
		return "", fmt.Errorf("reading the machine's ed25519 host key: %w: bigbang ships an ed25519 host key; give the machine one", err)
	}
	return pubFingerprint(out.Bytes())
}

// errNotPublicKey is returned for a line that is not "type base64 [comment]".
var errNotPublicKey = errors.New("not a public key line")

// pubFingerprint returns the SHA256 fingerprint of an authorized_keys
// style public key line.
func pubFingerprint(line []byte) (string, error) {
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return "", errNotPublicKey
	}
	return remote.Fingerprint(f[1])
}

// glyph is the mark of a check's status in the text output.
func glyph(s steps.Status) string {
	return ui.StatusGlyph(s, "–")
}

// writeChecks prints checks as a list, one line each with its glyph, ID and
// summary, the IDs aligned, and the fix below every warning and failure.
func writeChecks(w io.Writer, checks []steps.Check) {
	width := 0
	for _, c := range checks {
		width = max(width, len(c.ID))
	}
	for _, c := range checks {
		fmt.Fprintf(w, "%s %-*s  %s\n", glyph(c.Status), width, c.ID, c.Summary)
		if c.Fix != "" && (c.Status == steps.StatusWarn || c.Status == steps.StatusFail) {
			fmt.Fprintf(w, "  %*s  fix: %s\n", width, "", c.Fix)
		}
	}
}

// writeReport prints v as one line of JSON with --output json, and calls
// plain for the text output otherwise.
func writeReport(cmd *cobra.Command, cfg *steps.Config, v any, plain func(io.Writer)) error {
	out := cmd.OutOrStdout()
	if cfg.Output != "json" {
		plain(out)
		return nil
	}
	if err := json.NewEncoder(out).Encode(v); err != nil {
		return failErr(fmt.Errorf("%s: writing the report: %w", cmd.Name(), err))
	}
	return nil
}

// silentFailure ends a command with exit status 1 after a report that has
// already said why.
func silentFailure(cmd *cobra.Command) error {
	cmd.SilenceErrors = true
	return failErr(errSilentFailure)
}

// orUnknown shows an empty value as "unknown".
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
