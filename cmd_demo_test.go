package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

// buildBigbang builds the binary once for the terminal tests.
func buildBigbang(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bigbang")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// tmuxTerm is a detached tmux window on a private server, for driving bigbang
// in a real terminal: keys go in with send-keys, the screen comes out with
// capture-pane.
type tmuxTerm struct {
	t        *testing.T
	tmux     string
	sock     string
	exitFile string
}

// newTerm runs script (a shell script, written to a file so that no
// quoting of the environment can go wrong) in a w×h tmux window. The
// script's exit status is recorded for wait.
func newTerm(t *testing.T, w, h int, script string) *tmuxTerm {
	t.Helper()
	tm := &tmuxTerm{t: t, tmux: testutil.Need(t, "tmux"), sock: fmt.Sprintf("bb-%d-%d", os.Getpid(), time.Now().UnixNano())}
	dir := t.TempDir()
	tm.exitFile = filepath.Join(dir, "exit")
	file := filepath.Join(dir, "run.sh")
	body := "export TERM=xterm-256color\n" + script + "\necho $? > " + steps.ShellQuote(tm.exitFile) + "\nsleep 120\n"
	if err := os.WriteFile(file, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tm.tmux, "-L", tm.sock, "-f", "/dev/null", "new-session", "-d", "-s", "t",
		"-x", fmt.Sprint(w), "-y", fmt.Sprint(h), "sh "+file).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { tm.run("kill-server") })
	return tm
}

func (tm *tmuxTerm) run(args ...string) string {
	out, _ := exec.Command(tm.tmux, append([]string{"-L", tm.sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
	return string(out)
}

// screen is the window's text; with escapes, its colours and attributes.
func (tm *tmuxTerm) screen(escapes bool) string {
	args := []string{"capture-pane", "-p", "-t", "t"}
	if escapes {
		args = append(args, "-e")
	}
	return tm.run(args...)
}

// waitFor waits until the screen shows every one of want and returns it.
func (tm *tmuxTerm) waitFor(timeout time.Duration, want ...string) string {
	tm.t.Helper()
	return tm.waitScreen(timeout, false, want)
}

// waitForWrapped is waitFor for texts the screen may wrap: each of want
// is looked for in the screen's words joined by single spaces as well.
func (tm *tmuxTerm) waitForWrapped(timeout time.Duration, want ...string) string {
	tm.t.Helper()
	return tm.waitScreen(timeout, true, want)
}

func (tm *tmuxTerm) waitScreen(timeout time.Duration, wrapped bool, want []string) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := tm.screen(false)
		joined := s
		if wrapped {
			joined = strings.Join(strings.Fields(s), " ")
		}
		missing := false
		for _, w := range want {
			if !strings.Contains(s, w) && !strings.Contains(joined, w) {
				missing = true
			}
		}
		if !missing {
			return s
		}
		if b, err := os.ReadFile(tm.exitFile); err == nil {
			tm.t.Fatalf("bigbang exited (%s) before the screen showed %q; screen:\n%s", strings.TrimSpace(string(b)), want, s)
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the screen never showed %q; last screen:\n%s", want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForAny waits until the screen shows one of want.
func (tm *tmuxTerm) waitForAny(timeout time.Duration, escapes bool, want ...string) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s := tm.screen(escapes)
		for _, w := range want {
			if strings.Contains(s, w) {
				return s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	tm.t.Fatalf("the screen never showed %q; last screen:\n%s", want, tm.screen(false))
	return ""
}

// keys sends tmux key names (Enter, C-c, y, …).
func (tm *tmuxTerm) keys(keys ...string) {
	tm.run(append([]string{"send-keys", "-t", "t"}, keys...)...)
}

// typeText sends text literally, one key per character.
func (tm *tmuxTerm) typeText(text string) {
	tm.run("send-keys", "-t", "t", "-l", text)
}

// wait waits for the script to end and returns bigbang's exit status.
func (tm *tmuxTerm) wait(timeout time.Duration) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(tm.exitFile); err == nil {
			return strings.TrimSpace(string(b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	tm.t.Fatalf("bigbang did not exit; screen:\n%s", tm.screen(false))
	return ""
}

// TestDemoInTmux drives `bigbang demo --yes` in a real terminal: every phase
// ends done, the small terminal keeps its layout, NO_COLOR leaves no
// colour, a failure at disko ends on the resume command, and --reinstall
// goes through the drift, the backup and the restore before the reboot.
func TestDemoInTmux(t *testing.T) {
	bin := buildBigbang(t)
	tests := []struct {
		name     string
		w, h     int
		env      string
		args     string // after `demo --yes --speed 50`
		through  [][]string
		until    []string
		want     []string
		wantCode string
		escapes  bool
		// after is what the normal screen keeps once the wizard's
		// alternate screen is gone: the recovery must survive quitting.
		after []string
	}{
		{name: "success 120x40", w: 120, h: 40, until: []string{"NixOS is installed"},
			want: []string{"REHEARSAL", "✔ Connect", "✔ Kexec", "✔ Disko", "✔ Install", "✔ Key copy", "✔ Reboot", "ssh root@203.0.113.7"}, wantCode: "0"},
		{name: "60x20 NO_COLOR", w: 60, h: 20, env: "NO_COLOR=1", until: []string{"NixOS is installed"},
			want: []string{"REHEARSAL", "✔ Reboot"}, wantCode: "0", escapes: true},
		{name: "failure at disko", w: 120, h: 40, args: " --fail-at disko", until: []string{"failed in"},
			want: []string{"✘ The install failed in Disko", "Resume", "--phases disko,install,keys,reboot", "Could not create partition"}, wantCode: "1",
			after: []string{"bigbang: the install failed in Disko.", "What went wrong", "The server", "Resume with:", "--phases disko,install,keys,reboot", "bigbang explain"}},
		{name: "reinstall 120x40", w: 120, h: 40, args: " --reinstall",
			// The screens on the way, each REHEARSAL.
			through: [][]string{
				// The real comparison of the demo flake with the simulated
				// machine's disks, after the host key step found the key.
				{"REHEARSAL", "Reinstall required", "100.0 MiB → 1.0 GiB", "xfs → btrfs", "holds the machine's host key"},
				{"REHEARSAL", "Backup verified", "48213 entries, 3.4 GiB of files", "Stopped postgresql.service, caddy.service on 203.0.113.7 for a consistent backup"},
				// Between nixos-anywhere's install and its reboot.
				{"REHEARSAL", "Restore of the backup into 203.0.113.7:/mnt/persistent, before the first boot", "stopped before its reboot"},
			},
			until: []string{"NixOS is reinstalled"},
			want: []string{"REHEARSAL", "✔ NixOS is reinstalled on 203.0.113.7", "✔ Reboot", "persistent-203.0.113.7-",
				"/persistent holds 48213 entries, 3.4 GiB of files: restored before the first boot and compared with the archive", "Receipt"},
			wantCode: "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tm := newTerm(t, tc.w, tc.h, tc.env+" "+bin+" demo --yes --speed 50"+tc.args)
			for _, want := range tc.through {
				tm.waitForWrapped(90*time.Second, want...)
			}
			screen := tm.waitForAny(90*time.Second, tc.escapes, tc.until...)
			code := tm.wait(90 * time.Second)
			plain := regexp.MustCompile(`\x1b\[[0-9;:?]*[A-Za-z]`).ReplaceAllString(screen, "")
			// The result screen wraps a long command over lines; compare
			// with the lines joined as well.
			joined := strings.Join(strings.Fields(plain), " ")
			for _, w := range tc.want {
				if !strings.Contains(plain, w) && !strings.Contains(joined, w) {
					t.Errorf("screen lacks %q:\n%s", w, plain)
				}
			}
			for i, l := range strings.Split(strings.TrimRight(plain, "\n"), "\n") {
				if n := len([]rune(l)); n > tc.w {
					t.Errorf("line %d is %d wide in a %d-column terminal: %q", i, n, tc.w, l)
				}
			}
			if tc.escapes && regexp.MustCompile(`\x1b\[[0-9;]*(3[0-7]|38;[25]|4[0-7]|48;[25]|9[0-7])[;m]`).MatchString(screen) {
				t.Errorf("NO_COLOR: the screen has colours:\n%q", screen)
			}
			if code != tc.wantCode {
				t.Errorf("exit status %s, want %s", code, tc.wantCode)
			}
			if len(tc.after) > 0 {
				normal := tm.screen(false)
				for _, w := range tc.after {
					if !strings.Contains(normal, w) {
						t.Errorf("after the wizard ended, the terminal lacks %q:\n%s", w, normal)
					}
				}
			}
		})
	}
}

// BenchmarkFirstFrame measures the time from starting `bigbang demo` on a
// pseudo-terminal to the first frame of the wizard on it.
func BenchmarkFirstFrame(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "bigbang")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	var total time.Duration
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, "demo")
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		start := time.Now()
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		var seen strings.Builder
		for !strings.Contains(seen.String(), "Install NixOS onto a fresh VPS") {
			n, err := f.Read(buf)
			if err != nil {
				b.Fatalf("no first frame: %v: %q", err, seen.String())
			}
			seen.Write(buf[:n])
		}
		total += time.Since(start)
		_ = cmd.Process.Signal(os.Interrupt)
		go func() { _, _ = io.Copy(io.Discard, f) }()
		_ = cmd.Wait()
		f.Close()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-first-frame")
	b.ReportMetric(0, "ns/op")
}

// TestDemoWithoutTerminal runs `bigbang demo` as a newcomer's first
// command may: with no terminal. It runs the plain output, unattended, and
// ends as the rehearsed run does: a success whose new system answers with
// another host key than the VPS had (the shipped one), or each rehearsed
// failure in its own phase or check, with exit status 1.
func TestDemoWithoutTerminal(t *testing.T) {
	bin := buildBigbang(t)
	run := func(t *testing.T, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"demo", "--speed", "50"}, args...)...)
		cmd.Stdin = nil
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		code, out := run(t)
		if code != 0 || !strings.Contains(out, "REHEARSAL") || !strings.Contains(out, "Install finished") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		accepted := regexp.MustCompile(`new host key ed25519 (SHA256:\S+) accepted`).FindStringSubmatch(out)
		verified := regexp.MustCompile(`reboot verified: host key (SHA256:\S+)`).FindStringSubmatch(out)
		if accepted == nil || verified == nil || accepted[1] == verified[1] {
			t.Errorf("the host key does not change with the install (before %v, after %v):\n%s", accepted, verified, out)
		}
	})
	for _, tc := range []struct{ fail, want string }{
		{"connect", "in phase Connect"}, {"kexec", "in phase Kexec"}, {"disko", "in phase Disko"},
		{"install", "in phase Install"}, {"keys", "in phase Key copy"}, {"reboot", "in phase Reboot"},
		{"sudo", "remote.privilege"}, {"disk", "remote.disk"}, {"sops", "local.sops_recipient"}, {"hostkey", "remote.hostkey"},
	} {
		t.Run("fail at "+tc.fail, func(t *testing.T) {
			t.Parallel()
			code, out := run(t, "--fail-at", tc.fail)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, want 1 naming %q:\n%s", code, tc.want, out)
			}
		})
	}
	if code, out := run(t, "--fail-at", "nowhere"); code != 2 || !strings.Contains(out, "use one of") {
		t.Errorf("an unknown --fail-at: exit %d\n%s", code, out)
	}
}
