package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

// needVPS skips a test whose target must pass the preflight as a VPS
// would: the test host plays one only as root, in a mount namespace that
// hides this machine's container marks (testhost).
func needVPS(t testing.TB) {
	testutil.NeedRoot(t, "the test host hides this machine's container marks from the preflight only as root")
}

// runTestProcess is the body of a test that is a wizard in a process of
// its own (TestWizardProcess, TestReinstallWizardProcess): it parses the
// root flags processTerm put into wizardArgsEnv, runs run until SIGINT,
// SIGTERM or SIGHUP, and exits with bigbang's exit status. Without
// wizardArgsEnv (a normal test run) it skips: it runs only inside the
// terminal of the test parent.
func runTestProcess(t *testing.T, parent string, run func(ctx context.Context, root *cobra.Command, cfg *steps.Config) error) {
	args, ok := os.LookupEnv(wizardArgsEnv)
	if !ok {
		t.Skip("runs only inside the terminal of " + parent)
	}
	var cfg steps.Config
	root := newRoot(&cfg)
	if err := root.Flags().Parse(strings.Split(args, "\x1f")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cli.Usage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := cfg.Normalize(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cli.Usage)
	}
	err := run(ctx, root, &cfg)
	if err != nil && !errors.Is(err, cli.ErrSilent) {
		fmt.Fprintln(os.Stderr, "bigbang:", err)
	}
	os.Exit(cli.Code(ctx, err))
}

// toPreflight drives the wizard from the welcome screen through the target
// form as given (its six fields) into the preflight. check, unless nil, is
// called on the welcome and on the target screen.
func toPreflight(tm *tmuxTerm, wait time.Duration, check func(name string)) {
	tm.t.Helper()
	if check == nil {
		check = func(string) {}
	}
	tm.waitFor(wait, "Install NixOS onto a fresh VPS")
	check("welcome")
	tm.keys("Enter")
	tm.waitFor(wait, "Where should NixOS go?")
	check("target")
	for i := 0; i < 6; i++ {
		tm.keys("Enter")
	}
}

// quit sends key (q, C-c, …) and checks that bigbang exits with status
// want.
func (tm *tmuxTerm) quit(wait time.Duration, key, want string) {
	tm.t.Helper()
	tm.keys(key)
	if code := tm.wait(wait); code != want {
		tm.t.Errorf("exit %s, want %s; screen:\n%s", code, want, tm.screen(false))
	}
}

// unpinTarget leaves only the other hosts' entries in r's known_hosts: the
// test host's key is then new to bigbang.
func (r *e2eRun) unpinTarget(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(r.knownHosts, []byte(strings.Join(r.otherHosts, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pinImpostor pins another key for the test host in r's known_hosts, as
// if the host's key had changed, and returns what the file then holds.
func (x *e2e) pinImpostor(t *testing.T, r *e2eRun) string {
	t.Helper()
	_, other, err := testhost.GenerateKey(t.TempDir(), "impostor", "")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(other)
	pinned := fmt.Sprintf("[%s]:%d %s %s\n", x.h.IP, x.h.Port, f[0], f[1])
	if err := os.WriteFile(r.knownHosts, []byte(pinned), 0o600); err != nil {
		t.Fatal(err)
	}
	return pinned
}

// standinPgid is the process group the stand-in wrote into its pid file
// ("pgid=N"), or 0 before it has.
func standinPgid(pidFile string) int {
	pgid := 0
	if b, err := os.ReadFile(pidFile); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(f, "pgid="); ok {
				pgid, _ = strconv.Atoi(v)
			}
		}
	}
	return pgid
}

// keptKnownHosts checks that r's known_hosts still holds before.
func (r *e2eRun) keptKnownHosts(t *testing.T, before string) {
	t.Helper()
	if after := readFile(t, r.knownHosts); after != before {
		t.Errorf("known_hosts changed:\n%s\nwas:\n%s", after, before)
	}
}

// checkShippedKey checks that the test host came back on the host key
// shipped with r's extra files and that r's known_hosts pins it, once; it
// returns the known_hosts file.
func (x *e2e) checkShippedKey(t *testing.T, r *e2eRun) string {
	t.Helper()
	if f, w := strings.Fields(x.h.HostKeyPub()), strings.Fields(r.hostKeyPub); f[1] != w[1] {
		t.Errorf("the host runs key %s, want the shipped %s", f[1], w[1])
	}
	kh := readFile(t, r.knownHosts)
	entry := fmt.Sprintf("[%s]:%d %s", x.h.IP, x.h.Port, strings.Join(strings.Fields(r.hostKeyPub)[:2], " "))
	if strings.Count(kh, "["+x.h.IP+"]:"+x.h.PortString()+" ") != 1 || !strings.Contains(kh, entry) {
		t.Errorf("known_hosts does not pin the new key once as %q:\n%s", entry, kh)
	}
	return kh
}

// childPart is a transcript without bigbang's own records at its end (the
// exit status, the verified reboot): what the child printed.
func childPart(transcript string) string {
	lines := strings.SplitAfter(transcript, "\n")
	end := len(lines)
	for end > 0 && (lines[end-1] == "" || strings.HasPrefix(lines[end-1], "bigbang: ")) {
		end--
	}
	return strings.Join(lines[:end], "")
}
