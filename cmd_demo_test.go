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

// tmuxRun runs command in a detached tmux window of w×h on a private
// server, waits until the screen shows one of until, and returns the
// screen (with escapes when escapes is set) and the exit status.
func tmuxRun(t *testing.T, w, h int, env, command string, until []string, escapes bool) (screen string, code string) {
	t.Helper()
	tmux := testutil.Need(t, "tmux")
	sock := fmt.Sprintf("bb-%d-%d", os.Getpid(), time.Now().UnixNano())
	exitFile := filepath.Join(t.TempDir(), "exit")
	script := fmt.Sprintf("%s %s; echo $? > %s; sleep 60", env, command, exitFile)
	run := func(args ...string) string {
		out, _ := exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		return string(out)
	}
	if out, err := exec.Command(tmux, "-L", sock, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h),
		"env TERM=xterm-256color sh -c '"+script+"'").CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { run("kill-server") })
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		args := []string{"capture-pane", "-p", "-t", "t"}
		if escapes {
			args = append(args, "-e")
		}
		s := run(args...)
		for _, u := range until {
			if strings.Contains(s, u) {
				screen = s
			}
		}
		if screen != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if screen == "" {
		t.Fatalf("the screen never showed %q; last screen:\n%s", until, run("capture-pane", "-p", "-t", "t"))
	}
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(exitFile); err == nil {
			return screen, strings.TrimSpace(string(b))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("bigbang did not exit; screen:\n%s", run("capture-pane", "-p", "-t", "t"))
	return "", ""
}

// TestDemoInTmux drives `bigbang demo --yes` in a real terminal: every phase
// ends done, the small terminal keeps its layout, NO_COLOR leaves no
// colour, and a failure at disko ends on the resume command.
func TestDemoInTmux(t *testing.T) {
	bin := buildBigbang(t)
	tests := []struct {
		name     string
		w, h     int
		env      string
		until    []string
		want     []string
		wantCode string
		escapes  bool
	}{
		{name: "success 120x40", w: 120, h: 40, until: []string{"NixOS is installed"},
			want: []string{"REHEARSAL", "✓ Connect", "✓ Kexec", "✓ Disko", "✓ Install", "✓ Key copy", "✓ Reboot", "ssh root@203.0.113.7"}, wantCode: "0"},
		{name: "60x20 NO_COLOR", w: 60, h: 20, env: "NO_COLOR=1", until: []string{"NixOS is installed"},
			want: []string{"REHEARSAL", "✓ Reboot"}, wantCode: "0", escapes: true},
		{name: "failure at disko", w: 120, h: 40, env: "BIGBANG_REHEARSAL_FAIL_AT=disko", until: []string{"failed in"},
			want: []string{"✗ The install failed in Disko", "Resume", "--phases disko,install,keys,reboot", "Could not create partition"}, wantCode: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			screen, code := tmuxRun(t, tc.w, tc.h, tc.env, bin+" demo --yes --speed 50", tc.until, tc.escapes)
			plain := regexp.MustCompile(`\x1b\[[0-9;:?]*[A-Za-z]`).ReplaceAllString(screen, "")
			for _, w := range tc.want {
				if !strings.Contains(plain, w) {
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
