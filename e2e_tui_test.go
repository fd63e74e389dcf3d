package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/spf13/cobra"
)

// wizardArgsEnv carries the command line of the wizard into the test binary
// that TestWizardProcess turns into bigbang.
const wizardArgsEnv = "BIGBANG_WIZARD_ARGS"

// TestWizardProcess is the wizard in a process of its own, started in a
// tmux window by the end-to-end tests; it does nothing in a normal run.
func TestWizardProcess(t *testing.T) {
	runTestProcess(t, "TestWizardEndToEnd", func(ctx context.Context, root *cobra.Command, cfg *steps.Config) error {
		return runWizard(ctx, root, cfg, 0, 0, nil)
	})
}

// wizardTerm starts the wizard for run r in a w×h tmux window. env adds
// variables (NO_COLOR=1, STANDIN_FAIL_PHASE=disko, …). After the wizard
// ends, the script records the terminal's modes in r's folder (stty -a).
func (x *e2e) wizardTerm(t *testing.T, r *e2eRun, w, h int, env ...string) (*tmuxTerm, string) {
	t.Helper()
	return x.processTerm(t, r, w, h, "TestWizardProcess", env...)
}

// processTerm starts the test process proc (TestWizardProcess,
// TestReinstallWizardProcess) for run r in a w×h tmux window.
func (x *e2e) processTerm(t *testing.T, r *e2eRun, w, h int, proc string, env ...string) (*tmuxTerm, string) {
	t.Helper()
	args := []string{"--host", x.h.IP, "--port", x.h.PortString(), "--user", x.h.User, "-i", x.h.ClientKey,
		"--known-hosts", r.knownHosts, "--flake", x.flakeDir + "#machine", "--extra-files", r.keys,
		"--nixos-anywhere", x.standin, "--log", r.log, "--post-kexec-ssh-port", x.h.PortString()}
	vars := []string{wizardArgsEnv + "=" + strings.Join(args, "\x1f"), "XDG_STATE_HOME=" + r.state}
	for _, k := range []string{"XDG_CACHE_HOME", "SSH_AUTH_SOCK", "PATH", "HOME"} {
		vars = append(vars, k+"="+os.Getenv(k))
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STANDIN_") {
			vars = append(vars, kv)
		}
	}
	vars = append(vars, env...)
	var script strings.Builder
	script.WriteString(exports(vars))
	stty := filepath.Join(t.TempDir(), "stty")
	fmt.Fprintf(&script, "%s -test.run='^%s$'\ncode=$?\nstty -a > %s\n(exit $code)", steps.ShellQuote(os.Args[0]), proc, steps.ShellQuote(stty))
	return newTerm(t, w, h, script.String()), stty
}

// exports is the shell script that sets vars (k=v) and clears the modes
// the tests set themselves.
func exports(vars []string) string {
	var script strings.Builder
	script.WriteString("unset NO_COLOR ACCESSIBLE\n")
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&script, "export %s=%s\n", k, steps.ShellQuote(v))
	}
	return script.String()
}

// pastedTerm runs a command copied from the screen in a shell in a w×h
// tmux window, as the operator pastes it: bigbang is a shell function
// that runs the wizard's test process with the words the shell made of
// it, so the shell alone parses what was copied.
func (x *e2e) pastedTerm(t *testing.T, r *e2eRun, w, h int, pasted string) *tmuxTerm {
	t.Helper()
	vars := []string{"XDG_STATE_HOME=" + r.state}
	for _, k := range []string{"XDG_CACHE_HOME", "SSH_AUTH_SOCK", "PATH", "HOME"} {
		vars = append(vars, k+"="+os.Getenv(k))
	}
	script := exports(vars) + "bigbang() {\n" +
		"  old=$IFS; IFS=$(printf '\\037'); " + wizardArgsEnv + "=\"$*\"; IFS=$old\n" +
		"  export " + wizardArgsEnv + "\n" +
		"  " + steps.ShellQuote(os.Args[0]) + " -test.run='^TestWizardProcess$'\n}\n" + pasted + "\n"
	return newTerm(t, w, h, script)
}

// ansiRE matches the escape sequences capture-pane -e writes.
var ansiRE = regexp.MustCompile(`\x1b\[[0-9;:?]*[A-Za-z]`)

// colourRE matches an SGR sequence that sets a colour.
var colourRE = regexp.MustCompile(`\x1b\[[0-9;]*(3[0-7]|38;[25]|4[0-7]|48;[25]|9[0-7])[;m]`)

// layoutOK checks a screen of a w×h window: the header on the first line,
// the key line on the last, nothing wider than the window, and, with
// noColor, no colour at all.
func layoutOK(t *testing.T, tm *tmuxTerm, w, h int, noColor bool, name string) {
	t.Helper()
	esc := tm.screen(true)
	plain := ansiRE.ReplaceAllString(esc, "")
	lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n")
	if len(lines) != h {
		t.Errorf("%s: %d lines in a %d-line window:\n%s", name, len(lines), h, plain)
		return
	}
	if !strings.HasPrefix(lines[0], "bigbang ·") {
		t.Errorf("%s: the header is not on the first line:\n%s", name, plain)
	}
	if strings.TrimSpace(lines[h-1]) == "" {
		t.Errorf("%s: the key line is not on the last line:\n%s", name, plain)
	}
	for i, l := range lines {
		if n := len([]rune(l)); n > w {
			t.Errorf("%s: line %d is %d wide in a %d-column window: %q", name, i, n, w, l)
		}
	}
	if noColor && colourRE.MatchString(esc) {
		t.Errorf("%s: NO_COLOR, but the screen has colours:\n%q", name, esc)
	}
}

// throughWipe drives the wizard from the welcome screen to the progress
// screen with real keys: the form as given, the new host key accepted with
// y, the default build location, the plan, the host typed on the wipe
// screen. check is called on every screen.
func throughWipe(t *testing.T, x *e2e, tm *tmuxTerm, check func(name string)) {
	t.Helper()
	const wait = 30 * time.Second
	toPreflight(tm, wait, check)
	s := tm.waitFor(wait, "trust this key")
	check("preflight: new host key")
	if fp := testhost.Fingerprint(t, x.h.HostKeyPub()); !strings.Contains(s, fp) {
		t.Errorf("the preflight does not show the host key's fingerprint %s whole:\n%s", fp, s)
	}
	tm.keys("y")
	tm.waitFor(wait, "continue")
	check("preflight: done")
	tm.keys("Enter")
	tm.waitFor(wait, "Where to build")
	check("RAM and build")
	tm.keys("Enter")
	tm.waitFor(wait, "Plan")
	check("plan")
	tm.keys("Enter")
	tm.waitFor(wait, "to wipe it")
	check("wipe")
	tm.typeText(x.h.IP)
	tm.keys("Enter")
	tm.waitFor(wait, "Wiping")
	check("wipe countdown")
}

// TestWizardEndToEnd drives the wizard in a real terminal (tmux) against
// the real-sshd test host and the stand-in nixos-anywhere, which logs in
// with ssh, streams the extra files into the host's target root and
// reboots the host onto the key that came with them.
func TestWizardEndToEnd(t *testing.T) {
	x := newE2E(t)
	const wait = 60 * time.Second

	t.Run("new host key refused", func(t *testing.T) {
		r := x.newRun(t)
		r.unpinTarget(t)
		tm, _ := x.wizardTerm(t, r, 100, 30)
		toPreflight(tm, wait, nil)
		tm.waitFor(wait, "trust this key")
		tm.keys("n")
		tm.waitFor(wait, "Where should NixOS go?")
		tm.quit(wait, "C-c", "130") // stopped before anything changed
		if kh := readFile(t, r.knownHosts); strings.Contains(kh, "["+x.h.IP+"]:"+x.h.PortString()) {
			t.Errorf("known_hosts pins the refused key:\n%s", kh)
		}
		if _, err := os.Stat(r.pidFile); err == nil {
			t.Error("nixos-anywhere ran")
		}
	})

	t.Run("changed host key refused", func(t *testing.T) {
		r := x.newRun(t)
		pinned := x.pinImpostor(t, r)
		tm, _ := x.wizardTerm(t, r, 100, 30)
		toPreflight(tm, wait, nil)
		s := tm.waitFor(wait, "ssh-keygen -R")
		if strings.Contains(s, "trust this key") {
			t.Errorf("a changed key is offered for trust:\n%s", s)
		}
		if want := fmt.Sprintf("ssh-keygen -R '[%s]:%d'", x.h.IP, x.h.Port); !strings.Contains(strings.Join(strings.Fields(s), " "), want) {
			t.Errorf("the changed-key screen lacks %q:\n%s", want, s)
		}
		tm.keys("Enter") // must not continue
		time.Sleep(300 * time.Millisecond)
		if s := tm.screen(false); strings.Contains(s, "Where to build") {
			t.Fatalf("went on past a changed host key:\n%s", s)
		}
		tm.quit(wait, "C-c", "130")
		r.keptKnownHosts(t, pinned)
	})

	t.Run("success: keys copied, reboot verified, known_hosts updated", func(t *testing.T) {
		r := x.newRun(t)
		r.unpinTarget(t)
		tm, _ := x.wizardTerm(t, r, 120, 40)
		throughWipe(t, x, tm, func(string) {})
		s := tm.waitFor(wait, "NixOS is installed on "+x.h.IP)
		login := "ssh -p " + x.h.PortString() + " root@" + x.h.IP
		shipped := testhost.Fingerprint(t, r.hostKeyPub)
		for _, want := range []string{login, shipped, "✔ Connect", "✔ Disko", "✔ Key copy", "✔ Reboot"} {
			if !strings.Contains(s, want) {
				t.Errorf("the result screen lacks %q:\n%s", want, s)
			}
		}
		want, got := treeModes(t, r.keys), treeModes(t, x.h.Root)
		for p, v := range want {
			if got[p] != v {
				t.Errorf("%s on the target: %q, want %q", p, got[p], v)
			}
		}
		x.checkShippedKey(t, r)
		if p := filepath.Join(r.state, "bigbang", "hosts", fmt.Sprintf("%s@%d.json", x.h.IP, x.h.Port)); !strings.Contains(strings.Join(strings.Fields(s), ""), "Receipt"+p) {
			t.Errorf("the result screen does not name the receipt %s:\n%s", p, s)
		}
		tm.quit(wait, "q", "0")
		checkReceipt(t, x, r, shipped, "done")
		if s := tm.screen(false); !strings.Contains(s, "the transcript is in") {
			t.Errorf("the transcript's path is not left in the terminal:\n%s", s)
		}
	})

	t.Run("failure at disko, 60x20, NO_COLOR", func(t *testing.T) {
		r := x.newRun(t)
		r.unpinTarget(t)
		before := ""
		tm, _ := x.wizardTerm(t, r, 60, 20, "STANDIN_FAIL_PHASE=disko", "NO_COLOR=1")
		throughWipe(t, x, tm, func(name string) {
			layoutOK(t, tm, 60, 20, true, name)
			if name == "wipe" {
				before = readFile(t, r.knownHosts)
			}
		})
		tm.waitFor(wait, "bigbang · Install")
		layoutOK(t, tm, 60, 20, true, "progress")
		s := tm.waitFor(wait, "failed in Disko")
		layoutOK(t, tm, 60, 20, true, "result")
		flat := strings.Join(strings.Fields(s), " ")
		for _, want := range []string{"Resume", "--phases disko,", "What went wrong"} {
			if !strings.Contains(flat, want) {
				t.Errorf("the failure screen lacks %q:\n%s", want, s)
			}
		}
		if got := treeModes(t, x.h.Root); len(got) != 0 {
			t.Errorf("files reached the target although disko failed: %v", got)
		}
		tm.quit(wait, "q", "1")
		r.keptKnownHosts(t, before) // as it was on the wipe screen
	})

	// Back and change on the RAM screen moves the plan; the exact command
	// on the plan is the argv that runs, and the resume on the failure
	// screen and on the terminal after it are one command that plans what
	// it names — each as an operator copies it from the screen and pastes
	// it into a shell.
	t.Run("copied commands run", func(t *testing.T) {
		r := x.newRun(t)
		r.unpinTarget(t)
		tm, _ := x.wizardTerm(t, r, 100, 30, "STANDIN_FAIL_PHASE=disko")
		toPreflight(tm, wait, nil)
		tm.waitFor(wait, "trust this key")
		tm.keys("y")
		tm.waitFor(wait, "continue")
		tm.keys("Enter")
		// The keys: Tab (local), Enter, esc, Tab (remote), Enter:
		// the plan, its exact command and what runs follow the screen.
		tm.waitFor(wait, "(•) on the VPS")
		tm.keys("Tab")
		tm.waitFor(wait, "(•) on this machine")
		tm.keys("Enter")
		tm.waitFor(wait, "What will happen")
		tm.keys("c")
		if local := shellArgv(t, copyBlock(t, tm.waitFor(wait, "The exact command"), "The exact command")); !slices.Contains(local, "local") {
			t.Errorf("the plan after choosing this machine does not build locally: %q", local)
		}
		tm.keys("Escape")
		tm.waitFor(wait, "Where to build")
		tm.keys("Tab")
		tm.waitFor(wait, "(•) on the VPS")
		tm.keys("Enter")
		tm.waitFor(wait, "What will happen")
		tm.keys("c")
		exact := copyBlock(t, tm.waitFor(wait, "The exact command"), "The exact command")
		if got := shellArgv(t, exact); slices.Contains(got, "local") || !slices.Contains(got, "remote") {
			t.Errorf("back on the VPS, the exact command still builds here: %q", got)
		}
		tm.keys("Enter")
		tm.waitFor(wait, "to wipe it")
		tm.typeText(x.h.IP)
		tm.keys("Enter")
		resume := copyBlock(t, tm.waitFor(wait, "failed in Disko"), "Resume")
		tm.quit(wait, "q", "1")
		// The normal screen wraps long lines itself; a copy joins them,
		// as capture-pane -J does.
		summary := copyBlock(t, tm.run("capture-pane", "-p", "-J", "-t", "t"), "Resume with:")

		// The exact command, pasted into a shell, is the argv that ran.
		// The receipt's name may carry the port (host@PORT.json).
		recs, _ := filepath.Glob(filepath.Join(r.state, "bigbang", "hosts", x.h.IP+"*.json"))
		if len(recs) != 1 {
			t.Fatalf("receipts of %s: %q, want one", x.h.IP, recs)
		}
		var rec receipt.Receipt
		if err := json.Unmarshal([]byte(readFile(t, recs[0])), &rec); err != nil {
			t.Fatal(err)
		}
		if got := shellArgv(t, exact); !slices.Equal(got, rec.Argv) || len(got) == 0 {
			t.Errorf("the exact command copied from the plan:\n%s\nparses to %q,\nthe install ran %q", exact, got, rec.Argv)
		}
		// The resume, from the failure screen and from what stayed on the
		// terminal, is one command: bigbang with the phases from disko on.
		args := shellArgv(t, resume)
		if got := shellArgv(t, summary); !slices.Equal(got, args) {
			t.Errorf("the resume on the failure screen %q and on the terminal %q differ", args, got)
		}
		if len(args) < 2 || args[0] != "bigbang" || !slices.Contains(args, "--phases") || args[slices.Index(args, "--phases")+1] != "disko,install,keys,reboot" {
			t.Fatalf("the resume copied from the failure screen:\n%s\nparses to %q", resume, args)
		}
		// Pasted into a shell on a terminal, it opens the wizard for the
		// same machine, whose plan runs the phases it names; the test
		// leaves before the wipe.
		before := readFile(t, r.log)
		rt := x.pastedTerm(t, r, 100, 30, resume)
		toPreflight(rt, wait, nil)
		rt.waitFor(wait, "continue")
		rt.keys("Enter")
		rt.waitFor(wait, "Where to build")
		rt.keys("Enter")
		rt.waitFor(wait, "Plan")
		rt.keys("c")
		s := rt.waitFor(wait, "The exact command")
		if !strings.Contains(s, "Disko → Install → Key copy → Reboot") || strings.Contains(s, "Kexec") {
			t.Errorf("the resumed wizard's plan does not run the phases from disko on:\n%s", s)
		}
		planned := shellArgv(t, copyBlock(t, s, "The exact command"))
		if i := slices.Index(planned, "--phases"); i < 0 || i+1 >= len(planned) || planned[i+1] != "disko,install,reboot" || planned[0] != x.standin {
			t.Errorf("the resumed plan is not the stand-in from disko on: %q\n%s", planned, s)
		}
		rt.quit(wait, "C-c", "130") // left before anything changed
		if after := readFile(t, r.log); after != before {
			t.Errorf("the resume, left on its plan, wrote to the transcript:\n%s", strings.TrimPrefix(after, before))
		}
	})

	t.Run("ctrl+c during the install", func(t *testing.T) {
		r := x.newRun(t)
		r.unpinTarget(t)
		tm, stty := x.wizardTerm(t, r, 100, 30, "STANDIN_HANG_PHASE=install")
		throughWipe(t, x, tm, func(string) {})
		// Wait for the stand-in and its ssh to the test host.
		pgid := 0
		deadline := time.Now().Add(wait)
		for pgid == 0 || len(testhost.GroupMembers(pgid)) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("the stand-in did not start its remote command; screen:\n%s", tm.screen(false))
			}
			time.Sleep(20 * time.Millisecond)
			pgid = standinPgid(r.pidFile)
		}
		tm.waitFor(wait, "Building the system closure")
		tm.keys("C-c")
		tm.waitFor(wait, "stop the install")
		if left := testhost.GroupMembers(pgid); len(left) == 0 {
			t.Error("the install stopped before the operator confirmed")
		}
		tm.keys("y")
		s := tm.waitFor(wait, "Log")
		if left := testhost.GroupMembers(pgid); len(left) > 0 {
			t.Errorf("processes of the stand-in's group survived: %v", left)
		}
		if !strings.Contains(s, r.log) && !strings.Contains(strings.Join(strings.Fields(s), ""), r.log) {
			t.Errorf("the result screen does not name the log %s:\n%s", r.log, s)
		}
		tm.quit(wait, "q", "130")
		modes := readFile(t, stty)
		for _, m := range []string{"icanon", "echo", "isig"} {
			if !regexp.MustCompile(`(^|\s)` + m + `(\s|$)`).MatchString(modes) {
				t.Errorf("the terminal is left without %s:\n%s", m, modes)
			}
		}
		if s := strings.Join(strings.Fields(tm.screen(false)), ""); !strings.Contains(s, "interrupted;thetranscriptisin"+r.log) {
			t.Errorf("the transcript's path is not left in the terminal:\n%s", tm.screen(false))
		}
		// The terminal turned \n into \r\n; ssh's own messages already end
		// in \r\n.
		printed := strings.ReplaceAll(readFile(t, r.copy), "\r\n", "\n")
		logged := childPart(strings.ReplaceAll(readFile(t, r.log), "\r\n", "\n"))
		if logged != printed || !strings.Contains(logged, "### Building the system closure ###") {
			i := 0
			for i < len(logged) && i < len(printed) && logged[i] == printed[i] {
				i++
			}
			t.Errorf("transcript (%d bytes) differs from what was printed (%d bytes) from byte %d:\n--- transcript\n%q\n--- printed\n%q",
				len(logged), len(printed), i, logged[max(0, i-200):], printed[max(0, i-200):])
		}
	})
}

// copyBlock is the command under the header line that starts with
// header, as an operator selects it on the screen: its first line and
// each line a " \\" continues, indentation as shown (trailing blanks, which
// a copy drops, aside).
func copyBlock(t *testing.T, screen, header string) string {
	t.Helper()
	lines := strings.Split(screen, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), header) || i+1 >= len(lines) {
			continue
		}
		var block []string
		for _, c := range lines[i+1:] {
			c = strings.TrimRight(c, " ")
			block = append(block, c)
			if !strings.HasSuffix(c, "\\") {
				break
			}
		}
		if strings.TrimSpace(block[0]) == "" {
			break
		}
		return strings.Join(block, "\n")
	}
	t.Fatalf("no command under %q on the screen:\n%s", header, screen)
	return ""
}

// shellArgv is the argv sh makes of a command pasted into it, without
// running it: printf prints each word it was given.
func shellArgv(t *testing.T, pasted string) []string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "printf '%s\\0' "+pasted).Output()
	if err != nil {
		t.Fatalf("sh does not parse the copied command:\n%s\n%v", pasted, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}
