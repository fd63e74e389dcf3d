package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

// SudoersFile is where the seed's prerequisite line goes.
const SudoersFile = "/etc/sudoers.d/90-nixos-anywhere"

// maxSudoTries is how often a wrong sudo password is asked again.
const maxSudoTries = 3

// SudoSetup configures SetupPasswordlessSudo.
type SudoSetup struct {
	// Password asks for the login user's password (attempt counts from 1).
	// The bytes go to sudo's standard input once and are then zeroed; they
	// are never logged nor put in argv or the environment.
	Password func(attempt int) ([]byte, error)
	// File is the sudoers drop-in to write; default SudoersFile.
	File string
	// Sudo and Visudo name the programs on the target; default "sudo" and
	// "visudo". Tests name missing programs to play a target without them.
	Sudo, Visudo string
}

// SudoersLine is the line written for user.
func SudoersLine(user string) string { return user + " ALL=(ALL) NOPASSWD:ALL" }

// sudoProbe is what the target says before anything is written.
type sudoProbe struct {
	uid, user          string
	hasSudo, hasVisudo bool
	nopasswd           bool
}

func (s SudoSetup) defaults() SudoSetup {
	if s.File == "" {
		s.File = SudoersFile
	}
	if s.Sudo == "" {
		s.Sudo = "sudo"
	}
	if s.Visudo == "" {
		s.Visudo = "visudo"
	}
	return s
}

func (c *Client) probeSudo(ctx context.Context, s SudoSetup) (sudoProbe, error) {
	script := `PATH="$PATH:/usr/sbin:/sbin"
echo "uid=$(id -u)"
echo "user=$(id -un)"
command -v ` + steps.ShellQuote(s.Sudo) + ` >/dev/null 2>&1 && echo has_sudo=1
command -v ` + steps.ShellQuote(s.Visudo) + ` >/dev/null 2>&1 && echo has_visudo=1
` + steps.ShellQuote(s.Sudo) + ` -n true >/dev/null 2>&1 && echo nopasswd=1
exit 0`
	kv, err := c.runProbe(ctx, "the sudo probe", script)
	if err != nil {
		return sudoProbe{}, fmt.Errorf("sudo setup: %w", err)
	}
	return sudoProbe{
		uid: kv["uid"], user: kv["user"],
		hasSudo: kv["has_sudo"] != "", hasVisudo: kv["has_visudo"] != "", nopasswd: kv["nopasswd"] != "",
	}, nil
}

// sudoOKMarker is printed by the root script first: seeing it proves that
// sudo took the password.
const sudoOKMarker = "bigbang-sudo-ok"

// Exit statuses of the root script.
const (
	exitSudoersInvalid  = 3
	exitSudoersReadOnly = 4
)

// sudoersScript writes the sudoers line to a temporary file in the same
// folder (a name with a dot, which sudo's @includedir skips), validates it
// with visudo -cf and only then moves it into place, so that a broken file
// never locks sudo.
func sudoersScript(s SudoSetup, user string) string {
	return `echo ` + sudoOKMarker + `
PATH="$PATH:/usr/sbin:/sbin"
f=` + steps.ShellQuote(s.File) + `
d=$(dirname "$f")
tmp=$(mktemp "$d/.bigbang-sudoers.XXXXXX" 2>/dev/null) || { echo "cannot create a file in $d (read-only?)" >&2; exit ` + fmt.Sprint(exitSudoersReadOnly) + `; }
trap 'rm -f "$tmp"' EXIT
printf '%s\n' ` + steps.ShellQuote(SudoersLine(user)) + ` >"$tmp" || exit ` + fmt.Sprint(exitSudoersReadOnly) + `
chmod 0440 "$tmp" || exit ` + fmt.Sprint(exitSudoersReadOnly) + `
` + steps.ShellQuote(s.Visudo) + ` -cf "$tmp" >&2 || exit ` + fmt.Sprint(exitSudoersInvalid) + `
mv -f "$tmp" "$f" || exit ` + fmt.Sprint(exitSudoersReadOnly) + `
`
}

// SetupPasswordlessSudo gives the login user passwordless sudo, the seed's
// prerequisite: it writes SudoersLine to s.File (0440) after visudo has
// validated it, with the password typed once and fed to `sudo -S` on
// standard input, then proves it with `sudo -n true`. It returns false when
// nothing had to be done (root, or passwordless sudo already). A wrong
// password is asked again up to three times; nothing is written until sudo
// accepted it.
func (c *Client) SetupPasswordlessSudo(ctx context.Context, s SudoSetup) (changed bool, err error) {
	s = s.defaults()
	p, err := c.probeSudo(ctx, s)
	if err != nil {
		return false, err
	}
	switch {
	case p.uid == "0" || p.nopasswd:
		return false, nil
	case !p.hasSudo:
		return false, newErr(ErrSudoMissing, nil, "log in as root (--user root), or install sudo from the provider's console",
			"%s has no sudo", c.Resolved)
	case !p.hasVisudo:
		return false, newErr(ErrVisudoMissing, nil, "install sudo's visudo on the target, or write "+s.File+" yourself ("+SudoersLine(p.user)+")",
			"%s has no visudo: bigbang does not write a sudoers file it cannot validate", c.Resolved)
	case s.Password == nil:
		return false, newErr(ErrSudoPassword, nil, "run bigbang on a terminal to type the password once, or set up sudo yourself", "sudo needs %s's password", p.user)
	}
	cmd := "LC_ALL=C " + steps.ShellQuote(s.Sudo) + " -S -p '' -- sh -c " + steps.ShellQuote(sudoersScript(s, p.user))
	var lastStderr string
	for attempt := 1; attempt <= maxSudoTries; attempt++ {
		pw, err := s.Password(attempt)
		if err != nil {
			return false, newErr(ErrSudoPassword, err, "run again and type the password", "no sudo password for %s", p.user)
		}
		if bytes.ContainsAny(pw, "\r\n") {
			clear(pw)
			return false, newErr(ErrSudoPassword, nil, "type the password without line breaks", "the password contains a line break")
		}
		stdin := io.MultiReader(bytes.NewReader(pw), strings.NewReader("\n"))
		var out, errb bytes.Buffer
		err = c.run(ctx, "the sudoers setup (sudo -S)", cmd, stdin, &out, &errb, c.limits.probe(), 0)
		clear(pw)
		accepted := strings.HasPrefix(out.String(), sudoOKMarker)
		if err == nil {
			break
		}
		var re *RemoteError
		if !errors.As(err, &re) {
			return false, fmt.Errorf("sudo setup: %w", err)
		}
		if accepted {
			switch re.Status {
			case exitSudoersReadOnly:
				return false, newErr(ErrSudoersReadOnly, re, "make the folder writable (is / mounted read-only?), or log in as root",
					"cannot write %s on %s: %s", s.File, c.Resolved, strings.TrimSpace(re.Stderr))
			case exitSudoersInvalid:
				return false, newErr(ErrSudoersInvalid, re, "check the user name; nothing was written", "visudo rejected the line %q", SudoersLine(p.user))
			}
			return false, fmt.Errorf("sudo setup: %w", re)
		}
		lastStderr = strings.TrimSpace(errb.String())
		if !strings.Contains(lastStderr, "incorrect password") && !strings.Contains(lastStderr, "try again") {
			return false, newErr(ErrSudoPassword, re, "ask the provider's image documentation which user has sudo, or log in as root",
				"sudo refused %s: %s", p.user, lastLines(lastStderr, 3))
		}
		if attempt == maxSudoTries {
			return false, newErr(ErrSudoPassword, re, "check the password (it is the login user's own password); nothing was written",
				"sudo refused the password %d times", maxSudoTries)
		}
	}
	var errb bytes.Buffer
	if err := c.run(ctx, "the check sudo -n true", steps.ShellQuote(s.Sudo)+" -n true", nil, nil, &errb, c.limits.probe(), 0); err != nil {
		if errors.Is(err, ErrRemoteTimeout) || ctx.Err() != nil {
			return true, fmt.Errorf("sudo setup: %s was written, then: %w", s.File, err)
		}
		return true, newErr(ErrSudoStillAsks, err, "check that /etc/sudoers has '@includedir /etc/sudoers.d' (or '#includedir')",
			"%s was written but sudo still asks for a password", s.File)
	}
	return true, nil
}
