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

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/ui"
)

// preflightFunc is the shape of a preflight: installPreflight and
// ui.Backend.Preflight.
type preflightFunc = func(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (ui.Report, error)

// waiveContainerCheck wraps pre so that the preflight passes on a machine
// that is itself a container (as CI runners are): remote.container then
// fails about this machine, which the stand-in never kexecs. The check
// becomes a warning that says so, in the events and in the report; every
// other check keeps its verdict.
func waiveContainerCheck(pre preflightFunc) preflightFunc {
	waive := func(c steps.Check) steps.Check {
		if c.ID == remote.IDContainer && c.Status == steps.StatusFail {
			c.Status = steps.StatusWarn
			c.Summary = "waived by the test (the stand-in does not kexec): " + c.Summary
		}
		return c
	}
	return func(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (ui.Report, error) {
		rep, err := pre(ctx, cfg, func(e steps.Event) {
			if e.Type == steps.EventCheck {
				e.Check = waive(e.Check)
			}
			emit(e)
		})
		for i := range rep.Checks {
			rep.Checks[i] = waive(rep.Checks[i])
		}
		return rep, err
	}
}

// waiveContainer waives remote.container in the preflight of `bigbang
// install` (see waiveContainerCheck) until the test ends.
func waiveContainer(t testing.TB) {
	saved := installPreflight
	installPreflight = waiveContainerCheck(saved)
	t.Cleanup(func() { installPreflight = saved })
}

// waivedBackend is the real backend with remote.container waived (see
// waiveContainerCheck).
type waivedBackend struct{ ui.Backend }

func (b waivedBackend) Preflight(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (ui.Report, error) {
	return waiveContainerCheck(b.Backend.Preflight)(ctx, cfg, emit)
}

// waived wraps the wizard's backend in waivedBackend.
func waived(b ui.Backend) ui.Backend { return waivedBackend{b} }

// runTestProcess is the body of a test that is a wizard in a process of
// its own (TestWizardProcess, TestReinstallWizardProcess): it parses the
// root flags processTerm put into wizardArgsEnv, runs run until SIGINT,
// SIGTERM or SIGHUP, and exits with bigbang's exit status. Without
// wizardArgsEnv (a normal test run) it skips: it runs only inside the
// terminal of the test parent.
func runTestProcess(t *testing.T, parent string, run func(ctx context.Context, cfg *steps.Config) error) {
	args, ok := os.LookupEnv(wizardArgsEnv)
	if !ok {
		t.Skip("runs only inside the terminal of " + parent)
	}
	var cfg steps.Config
	root := newRoot(&cfg)
	if err := root.PersistentFlags().Parse(strings.Split(args, "\x1f")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	err := run(ctx, &cfg)
	if err != nil && !errors.Is(err, errSilentFailure) {
		fmt.Fprintln(os.Stderr, "bigbang:", err)
	}
	os.Exit(exitCode(ctx, err))
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
