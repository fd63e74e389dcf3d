package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

var (
	standinOnce sync.Once
	standinPath string
	standinErr  error
)

// standin builds the stand-in nixos-anywhere once per test binary.
func standin(t testing.TB) string {
	t.Helper()
	standinOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			standinErr = err
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir, err := os.MkdirTemp("", "standin")
		if err != nil {
			standinErr = err
			return
		}
		standinPath = filepath.Join(dir, "nixos-anywhere")
		cmd := exec.Command("go", "build", "-o", standinPath, "./testdata/standin-nixos-anywhere")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			standinErr = fmt.Errorf("building the stand-in: %v\n%s", err, b)
		}
	})
	if standinErr != nil {
		t.Fatal(standinErr)
	}
	return standinPath
}

func TestMain(m *testing.M) {
	if os.Getenv("RUNNER_BENCH_CHILD") == "progress" {
		benchChild()
		os.Exit(0)
	}
	code := m.Run()
	if standinPath != "" {
		os.RemoveAll(filepath.Dir(standinPath))
	}
	os.Exit(code)
}

// collector records events and lets a test wait for one.
type collector struct {
	mu     sync.Mutex
	events []steps.Event
	notify chan struct{}
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) sink(e steps.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) all() []steps.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]steps.Event(nil), c.events...)
}

func (c *collector) lines() []string {
	var out []string
	for _, e := range c.all() {
		if e.Type == steps.EventLine {
			out = append(out, e.Text)
		}
	}
	return out
}

// waitFor waits until an event satisfies ok.
func (c *collector) waitFor(t *testing.T, what string, ok func(steps.Event) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, e := range c.all() {
			if ok(e) {
				return
			}
		}
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; events: %v", what, c.all())
		}
	}
}

func standinEnv(kv ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, kv...)
}

var allPhases = []steps.PhaseID{steps.PhaseBuild, steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseKeys, steps.PhaseReboot}

func TestRunSuccessTerminalOrderAndLog(t *testing.T) {
	bin := standin(t)
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "copy")
	logPath := filepath.Join(dir, "logs", "sub", "run.log")
	c := newCollector()
	res, err := Run(context.Background(), Options{
		Argv:    []string{bin, "--flake", ".#vps-arm", "--extra-files", dir, "--build-on", "remote", "opc@192.0.2.7"},
		Env:     standinEnv("STANDIN_REPORT_TTY=1", "STANDIN_COPY="+copyPath),
		LogPath: logPath,
		Phases:  allPhases,
	}, c.sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != steps.OutcomeSuccess || res.ExitCode != 0 || res.Log != logPath {
		t.Fatalf("result = %+v", res)
	}
	lines := c.lines()
	t.Run("child sees a terminal", func(t *testing.T) {
		want := "standin: stdin terminal=yes stdout terminal=yes stderr terminal=yes"
		if len(lines) == 0 || lines[0] != want {
			t.Fatalf("first line = %q, want %q", lines[0], want)
		}
	})
	copied, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("stdout and stderr merged in order", func(t *testing.T) {
		// Each line as a terminal shows it: what follows its last '\r'
		// (nix's status line is redrawn that way), without escapes.
		want := strings.Split(strings.TrimSuffix(string(copied), "\n"), "\n")
		for i, l := range want {
			l = strings.TrimSuffix(l, "\r")
			if j := strings.LastIndexByte(l, '\r'); j >= 0 {
				l = l[j+1:]
			}
			want[i] = string(cleanText([]byte(l), nil))
		}
		if strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("lines differ from what the stand-in wrote:\n got %d lines\nwant %d lines", len(lines), len(want))
		}
		// Both streams really are in there.
		if !strings.Contains(string(copied), "### Formatting hard drive with disko ###\nWarning: Permanently added") {
			t.Fatal("expected a stderr line right after a stdout step line")
		}
	})
	t.Run("log holds every byte", func(t *testing.T) {
		logged, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		// Output post-processing is off, so the terminal passes the
		// child's bytes through unchanged.
		want := copied
		if !bytes.Equal(logged, want) {
			t.Fatalf("log has %d bytes, the stand-in wrote %d ", len(logged), len(want))
		}
		st, _ := os.Stat(logPath)
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("log mode %04o, want 0600", st.Mode().Perm())
		}
		dst, _ := os.Stat(filepath.Dir(logPath))
		if dst.Mode().Perm() != 0o700 {
			t.Fatalf("log folder mode %04o, want 0700", dst.Mode().Perm())
		}
	})
	t.Run("noise flagged", func(t *testing.T) {
		seen := map[string]bool{}
		for _, e := range c.all() {
			if e.Type != steps.EventLine {
				continue
			}
			noise := strings.HasPrefix(e.Text, "Warning: Permanently added ") ||
				strings.HasPrefix(e.Text, "Pseudo-terminal will not be allocated") ||
				strings.HasPrefix(e.Text, "Connection to 192.0.2.7 closed") ||
				strings.HasPrefix(e.Text, "Warning: Identity file") ||
				strings.Contains(e.Text, "ssh-copy-id: INFO: ")
			if e.Noise != noise {
				t.Errorf("line %q has Noise %v, want %v", e.Text, e.Noise, noise)
			}
			if noise {
				seen[strings.Fields(e.Text)[0]] = true
			}
		}
		for _, w := range []string{"Warning:", "Pseudo-terminal", "Connection", "/usr/bin/ssh-copy-id:"} {
			if !seen[w] {
				t.Errorf("no noise line starting %q in the run", w)
			}
		}
	})
	t.Run("phase events", func(t *testing.T) {
		evs := c.all()
		for i, p := range allPhases {
			if evs[i].Type != steps.EventPhase || evs[i].Phase != p || evs[i].State != steps.StatePending {
				t.Fatalf("event %d = %+v, want %s pending", i, evs[i], p)
			}
		}
		final := map[steps.PhaseID]steps.PhaseState{}
		for _, e := range evs {
			if e.Type == steps.EventPhase {
				final[e.Phase] = e.State
			}
		}
		want := map[steps.PhaseID]steps.PhaseState{
			steps.PhaseBuild: steps.StateSkipped, steps.PhaseConnect: steps.StateDone, steps.PhaseKexec: steps.StateDone,
			steps.PhaseDisko: steps.StateDone, steps.PhaseInstall: steps.StateDone, steps.PhaseKeys: steps.StateDone,
			steps.PhaseReboot: steps.StateDone,
		}
		for p, s := range want {
			if final[p] != s {
				t.Errorf("phase %s ended %q, want %q", p, final[p], s)
			}
		}
		last := evs[len(evs)-1]
		if last.Type != steps.EventResult || last.Outcome != steps.OutcomeSuccess || last.Log != logPath {
			t.Fatalf("last event = %+v, want the success result", last)
		}
	})
}

func TestRunExitStatus(t *testing.T) {
	bin := standin(t)
	for _, tc := range []struct {
		name, phase, status string
		want                int
		wantPhase           steps.PhaseID
	}{
		{"disko fails with 1", "disko", "1", 1, steps.PhaseDisko},
		{"kexec fails with 42", "kexec", "42", 42, steps.PhaseKexec},
		{"connect fails with ssh's 255", "connect", "255", 255, steps.PhaseConnect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector()
			res, err := Run(context.Background(), Options{
				Argv:    []string{bin, "--flake", ".#vps-arm", "opc@192.0.2.7"},
				Env:     standinEnv("STANDIN_FAIL_PHASE="+tc.phase, "STANDIN_FAIL_STATUS="+tc.status),
				LogPath: filepath.Join(t.TempDir(), "run.log"),
				Phases:  []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseReboot},
			}, c.sink)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != tc.want || res.Outcome != steps.OutcomeFailed || res.FailedPhase != tc.wantPhase {
				t.Fatalf("result = %+v, want exit %d, failed in %s", res, tc.want, tc.wantPhase)
			}
			if res.Diagnosis == nil || res.Diagnosis.Summary == "" {
				t.Fatalf("no diagnosis: %+v", res)
			}
			evs := c.all()
			last := evs[len(evs)-1]
			if last.Type != steps.EventResult || last.ExitCode != tc.want {
				t.Fatalf("last event = %+v", last)
			}
		})
	}
}

// readPidfile waits for the stand-in's pid file and reads its fields.
func readPidfile(t *testing.T, path string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), "grandchild=") {
			m := map[string]int{}
			for _, f := range strings.Fields(string(data)) {
				k, v, _ := strings.Cut(f, "=")
				m[k], _ = strconv.Atoi(v)
			}
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid file: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunCancelLeavesNoProcess(t *testing.T) {
	bin := standin(t)
	for _, tc := range []struct {
		name       string
		env        []string
		wantStatus int
	}{
		{"child and grandchild stop on SIGINT", []string{"STANDIN_GRANDCHILD=1"}, 128 + int(syscall.SIGINT)},
		{"child ignores SIGINT: SIGTERM", []string{"STANDIN_GRANDCHILD=1", "STANDIN_IGNORE_INT=1"}, 128 + int(syscall.SIGTERM)},
		{"grandchild ignores everything but SIGKILL", []string{"STANDIN_GRANDCHILD=stubborn"}, 128 + int(syscall.SIGINT)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "pids")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := newCollector()
			type ret struct {
				res Result
				err error
			}
			done := make(chan ret, 1)
			go func() {
				res, err := Run(ctx, Options{
					Argv:      []string{bin, "--flake", ".#vps-arm", "opc@192.0.2.7"},
					Env:       standinEnv(append(tc.env, "STANDIN_HANG_PHASE=kexec", "STANDIN_PIDFILE="+pidfile)...),
					LogPath:   filepath.Join(t.TempDir(), "run.log"),
					Phases:    []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec},
					Grace:     300 * time.Millisecond,
					TermGrace: 300 * time.Millisecond,
				}, c.sink)
				done <- ret{res, err}
			}()
			pids := readPidfile(t, pidfile)
			if pids["pgid"] != pids["pid"] || pids["sid"] != pids["pid"] {
				t.Fatalf("the child is not the leader of its own session and group: %v", pids)
			}
			c.waitFor(t, "the kexec step", func(e steps.Event) bool {
				return e.Type == steps.EventLine && strings.Contains(e.Text, "Downloading kexec tarball")
			})
			cancel()
			var r ret
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.res.Outcome != steps.OutcomeAborted || r.res.ExitCode != tc.wantStatus {
				t.Fatalf("result = %+v, want aborted with status %d", r.res, tc.wantStatus)
			}
			if m := groupMembers(pids["pgid"]); len(m) > 0 {
				t.Fatalf("processes of the group still alive: %v", m)
			}
			if st, _, ok := procStat(pids["grandchild"]); ok && st != 'Z' {
				t.Fatalf("grandchild %d still alive (state %c)", pids["grandchild"], st)
			}
			evs := c.all()
			if last := evs[len(evs)-1]; last.Type != steps.EventResult || last.Outcome != steps.OutcomeAborted || last.FailedPhase != steps.PhaseKexec {
				t.Fatalf("last event = %+v", last)
			}
		})
	}
}

func TestRunStall(t *testing.T) {
	bin := standin(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newCollector()
	done := make(chan Result, 1)
	go func() {
		res, _ := Run(ctx, Options{
			Argv:         []string{bin, "--flake", ".#vps-arm", "opc@192.0.2.7"},
			Env:          standinEnv("STANDIN_HANG_PHASE=disko"),
			LogPath:      filepath.Join(t.TempDir(), "run.log"),
			Phases:       []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko},
			Stall:        map[steps.PhaseID]time.Duration{steps.PhaseDisko: 200 * time.Millisecond},
			DefaultStall: time.Minute,
			Grace:        200 * time.Millisecond,
		}, c.sink)
		done <- res
	}()
	// Two stalls in a row, with nothing between them: a pause that a
	// loaded machine puts into the stand-in's output before the hang may
	// earn a stall of its own, which the output after it ends.
	var stalls []steps.Event
	c.waitFor(t, "two stall events in a row", func(steps.Event) bool {
		stalls = nil
		for _, e := range c.all() {
			switch e.Type {
			case steps.EventStall:
				stalls = append(stalls, e)
			case steps.EventLine, steps.EventProgress:
				stalls = nil
			}
		}
		return len(stalls) >= 2
	})
	cancel()
	res := <-done
	if res.Outcome != steps.OutcomeAborted {
		t.Fatalf("outcome %s, want aborted (the watchdog never stops the child itself)", res.Outcome)
	}
	for i, s := range stalls[:2] {
		if s.Phase != steps.PhaseDisko {
			t.Errorf("stall %d in phase %s, want disko", i, s.Phase)
		}
		if min := time.Duration(i+1) * 200 * time.Millisecond; s.Stall < min {
			t.Errorf("stall %d after %s, want at least %s", i, s.Stall, min)
		}
	}
}

func TestRunUnwritableLogStartsNothing(t *testing.T) {
	bin := standin(t)
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	for _, tc := range []struct{ name, path string }{
		{"folder is a file", filepath.Join(blocker, "logs", "run.log")},
		{"log is a folder", dir},
		{"no path", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), Options{
				Argv:    []string{bin, "--flake", ".#vps-arm", "opc@192.0.2.7"},
				Env:     standinEnv("STANDIN_MARKER=" + marker),
				LogPath: tc.path,
			}, nil)
			if !errors.Is(err, ErrLog) {
				t.Fatalf("err = %v, want ErrLog", err)
			}
			if !strings.Contains(err.Error(), "--log") {
				t.Fatalf("error does not say what to do: %v", err)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the child ran although the log could not be opened")
			}
		})
	}
}

func TestRunStdinAndSize(t *testing.T) {
	sh := "/bin/sh"
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"stdin is forwarded", Options{Argv: []string{sh, "-c", "stty -echo; read x; echo got $x"}, Stdin: strings.NewReader("hello\n")}, "got hello"},
		{"window size", Options{Argv: []string{sh, "-c", "stty size"}, Size: Size{Rows: 33, Cols: 99}}, "33 99"},
		{"no stdin: end of input is not sent, but nothing hangs", Options{Argv: []string{sh, "-c", "echo alone"}}, "alone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector()
			tc.opts.LogPath = filepath.Join(t.TempDir(), "run.log")
			res, err := Run(context.Background(), tc.opts, c.sink)
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("res %+v err %v", res, err)
			}
			if got := c.lines(); !contains(got, tc.want) {
				t.Fatalf("lines %q do not contain %q", got, tc.want)
			}
		})
	}
}

func TestRunStartError(t *testing.T) {
	_, err := Run(context.Background(), Options{Argv: []string{"/nonexistent/nixos-anywhere"}, LogPath: filepath.Join(t.TempDir(), "l")}, nil)
	if !errors.Is(err, ErrStart) {
		t.Fatalf("err = %v, want ErrStart", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
