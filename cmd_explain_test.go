package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/cli"
)

// runExplain runs `bigbang explain args…` in process and returns its exit
// code, standard output and error text.
func runExplain(stdin string, args ...string) (int, string, string) {
	return runRoot(context.Background(), stdin, append([]string{"explain"}, args...)...)
}

func TestExplainCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	failed := write("failed.log", []byte("### Installing NixOS ###\ninstalling the boot loader...\n"+
		"Died at /nix/store/abc-install-grub.pl line 827.\ninstallation finished!\n### Rebooting ###\n### Done! ###\n"))
	success := write("ok.log", []byte("### Uploading install SSH keys ###\n### Gathering machine facts ###\n### Rebooting ###\n### Done! ###\n"))
	empty := write("empty.log", nil)
	binary := write("binary.log", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00"))
	tests := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		stdout  []string // substrings
		message string   // substring of the error
	}{
		{"failed run is explained", "", []string{failed}, 0,
			[]string{"Install", "failed", "lines 1-4", "boot-loader", "Evidence:", "line 3: Died at", "(matches the known failure boot-loader)", "line 1: ### Installing NixOS ###", "Remedy:", "Reboot"}, ""},
		{"success", "", []string{success}, 0, []string{"Connect", "done", "Outcome: success"}, ""},
		{"stdin", "### Formatting hard drive with disko ###\nCould not create partition 2 from 34 to 99\n", []string{"-"}, 0,
			[]string{"standard input", "Disko", "disko-layout"}, ""},
		{"missing file", "", []string{filepath.Join(dir, "nope.log")}, 1, nil, "does not exist"},
		{"empty file", "", []string{empty}, 1, nil, "empty: nothing to explain"},
		{"empty stdin", "", []string{"-"}, 1, nil, "empty: nothing to explain"},
		{"binary file", "", []string{binary}, 1, nil, "not a text transcript"},
		{"a folder", "", []string{dir}, 1, nil, "is a folder"},
		{"no argument", "", nil, 2, nil, "exactly one transcript"},
		{"two arguments", "", []string{failed, success}, 2, nil, "exactly one transcript"},
		{"unknown flag", "", []string{"--jsn", failed}, 2, nil, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, msg := runExplain(tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, error %q)", code, tt.code, out, msg)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tt.message != "" && !strings.Contains(msg, tt.message) {
				t.Errorf("error %q lacks %q", msg, tt.message)
			}
		})
	}
}

// TestExplainJSON: --json prints exactly the object of DESIGN.md.
func TestExplainJSON(t *testing.T) {
	in := "### Uploading install SSH keys ###\n### Gathering machine facts ###\n### Switching system into kexec ###\n" +
		"kexec_file_load failed: Resource busy\n"
	code, out, msg := runExplain(in, "--json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("want one line, got %q", out)
	}
	diag := got["diagnosis"].(map[string]any)
	// The evidence: where the failed phase began and the failure line,
	// each with a reason.
	ev, _ := got["evidence"].([]any)
	wantEv := []struct {
		line float64
		text string
	}{{3, "### Switching system into kexec ###"}, {4, "kexec_file_load failed: Resource busy"}}
	if len(ev) != len(wantEv) {
		t.Fatalf("evidence %v, want lines %v", got["evidence"], wantEv)
	}
	for i, w := range wantEv {
		e := ev[i].(map[string]any)
		if e["line"] != w.line || e["text"] != w.text || e["why"] == "" || len(e) != 3 {
			t.Errorf("evidence %d: %v, want line %v %q with a reason", i, e, w.line, w.text)
		}
	}
	want := map[string]any{
		"evidence":     got["evidence"],
		"outcome":      "failed",
		"failed_phase": "kexec",
		"phases": []any{
			map[string]any{"id": "connect", "state": "done", "first_line": 1.0, "last_line": 2.0},
			map[string]any{"id": "kexec", "state": "failed", "first_line": 3.0, "last_line": 4.0},
		},
		"diagnosis": map[string]any{"id": "kexec-busy", "summary": diag["summary"], "remedy": diag["remedy"]},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if diag["summary"] == "" || diag["remedy"] == "" {
		t.Errorf("diagnosis without words: %v", diag)
	}
}

// TestExplainInterrupted: explain on a FIFO nobody writes blocks in its
// read; Ctrl-C (SIGINT) still ends it at once with exit status 130.
func TestExplainInterrupted(t *testing.T) {
	bin := buildBigbang(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	cmd := exec.Command(bin, "explain", fifo)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The open of a FIFO blocks until a writer comes: keep one open
	// that never writes, so that the read is what blocks.
	go func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			time.Sleep(30 * time.Second)
			w.Close()
		}
	}()
	time.Sleep(time.Second)
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != cli.Interrupted {
			t.Errorf("exit %d after SIGINT, want 130", code)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("explain ignored SIGINT while it read a FIFO")
	}
}
