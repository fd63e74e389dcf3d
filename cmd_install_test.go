package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/receipt"
)

func installArgs(t *testing.T, extra ...string) (args []string, logPath, marker string) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(dir, "logs", "run.log")
	marker = filepath.Join(dir, "ran")
	t.Setenv("STANDIN_MARKER", marker)
	// Receipts go to the test's own state folder.
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	args = append([]string{"install", "--host", "192.0.2.7", "--extra-files", keys,
		"--nixos-anywhere", buildStandin(t), "--log", logPath}, extra...)
	return args, logPath, marker
}

func TestInstallRefusesBeforeRunning(t *testing.T) {
	for _, tc := range []struct {
		name     string
		extra    []string
		wantCode int
		wantText string
	}{
		{"no --yes-wipe", []string{"--output", "json"}, cli.Usage, "--yes-wipe 192.0.2.7"},
		{"--yes-wipe names another host", []string{"--yes-wipe", "192.0.2.8"}, cli.Usage, "does not match the target host"},
		{"invalid port", []string{"--yes-wipe", "192.0.2.7", "--port", "0"}, cli.Usage, "port 0 is out of range"},
		{"unknown output", []string{"--yes-wipe", "192.0.2.7", "--output", "xml"}, cli.Usage, "--output"},
		{"nixos-anywhere command missing", []string{"--yes-wipe", "192.0.2.7", "--nixos-anywhere", "/nonexistent/nixos-anywhere"}, cli.Failed, "not found"},
		{"nix missing", []string{"--yes-wipe", "192.0.2.7", "--nixos-anywhere", "nix run x --"}, cli.Failed, "install Nix"},
		{"log folder cannot be written", []string{"--yes-wipe", "192.0.2.7", "--log", "/proc/version/x.log"}, cli.Failed, "--log"},
		{"no time to wait for the reboot", []string{"--yes-wipe", "192.0.2.7", "--reboot-timeout", "0s"}, cli.Usage, "--reboot-timeout"},
		{"negative time to wait for the reboot", []string{"--yes-wipe", "192.0.2.7", "--reboot-timeout", "-1m"}, cli.Usage, "--reboot-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, logPath, marker := installArgs(t, tc.extra...)
			if tc.name == "nix missing" {
				t.Setenv("PATH", t.TempDir())
			}
			code, stdout, stderr := runRoot(context.Background(), "", args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr)
			}
			if !strings.Contains(stderr, tc.wantText) {
				t.Fatalf("stderr %q does not say %q", stderr, tc.wantText)
			}
			if stdout != "" {
				t.Fatalf("something was rendered: %q", stdout)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("nixos-anywhere ran")
			}
			if _, err := os.Stat(logPath); err == nil {
				t.Fatal("a transcript was started")
			}
		})
	}
}

type jsonEvent struct {
	Type        string          `json:"type"`
	Phase       string          `json:"phase"`
	State       string          `json:"state"`
	Text        string          `json:"text"`
	Outcome     string          `json:"outcome"`
	FailedPhase string          `json:"failed_phase"`
	Diagnosis   steps.Diagnosis `json:"diagnosis"`
	Log         string          `json:"log"`
	ExitCode    int             `json:"exit_code"`
	Time        time.Time       `json:"time"`
}

func TestInstallJSON(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         []string
		wantCode    int
		wantOutcome string
		wantFailed  string
		wantDiag    string // part of the diagnosis summary or remedy
	}{
		// The extra-files tree holds no host key: nixos-anywhere succeeds,
		// but nothing proves the new system, so the install is no success.
		{"new system not verifiable", nil, cli.Failed, "failed", "reboot", "NOT verified and NOT pinned"},
		{"disko cannot create a partition", []string{"STANDIN_FAIL_PHASE=disko"}, cli.Failed, "failed", "disko", "disk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			args, logPath, _ := installArgs(t, "--yes-wipe", "192.0.2.7", "--output", "json", "--skip-preflight")
			code, stdout, stderr := runRoot(context.Background(), "", args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr)
			}
			if !strings.Contains(stderr, logPath) {
				t.Fatalf("stderr does not name the transcript: %q", stderr)
			}
			evs := parseJSONLines[jsonEvent](t, stdout)
			if evs[0].Type != "phase" || evs[0].State != "pending" || evs[0].Phase != "connect" {
				t.Fatalf("first event %+v, want connect pending", evs[0])
			}
			res := evs[len(evs)-1]
			if res.Type != "result" || res.Outcome != tc.wantOutcome || res.FailedPhase != tc.wantFailed || res.Log != logPath {
				t.Fatalf("result %+v", res)
			}
			if tc.wantDiag != "" && !strings.Contains(res.Diagnosis.Summary+" "+res.Diagnosis.Remedy, tc.wantDiag) {
				t.Fatalf("diagnosis %+v does not mention %q", res.Diagnosis, tc.wantDiag)
			}
			if tc.wantFailed == "reboot" {
				said := false
				for _, e := range evs {
					said = said || e.Type == "line" && strings.Contains(e.Text, "NOT verified") && strings.Contains(e.Text, "NOT pinned")
				}
				if !said || res.Diagnosis.ID != "reboot.unverified" || !strings.Contains(res.Diagnosis.Remedy, "ssh-keygen -R 192.0.2.7") {
					t.Fatalf("line events say it: %v; diagnosis %+v, want reboot.unverified with the ssh-keygen -R hint", said, res.Diagnosis)
				}
			}
			lines := 0
			for _, e := range evs {
				// bigbang's own lines (the reboot it could not verify: the
				// tree holds no host key) are not in the transcript.
				if e.Type == "line" && !strings.HasPrefix(e.Text, "bigbang: ") {
					lines++
					if e.Phase == "" {
						t.Fatalf("line without a phase: %+v", e)
					}
				}
			}
			logged, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(childPart(string(logged)), "\n"); got != lines {
				t.Fatalf("%d line events for %d lines in the transcript", lines, got)
			}
		})
	}
}

func TestInstallPlain(t *testing.T) {
	t.Setenv("STANDIN_FAIL_PHASE", "disko")
	args, logPath, _ := installArgs(t, "--yes-wipe", "192.0.2.7", "--output", "plain", "--skip-preflight")
	code, stdout, _ := runRoot(context.Background(), "", args...)
	if code != cli.Failed {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"\nInstalling .#vps-arm onto opc@192.0.2.7\n",
		"\n==> Connect\n    ### Uploading install SSH keys ###\n",
		"\n<== Connect done in ",
		"\n==> Disko\n    ### Building disko script ###\n",
		"\n    Could not create partition 2 from 1050624 to 104857566\n",
		"\n<== Disko FAILED in ",
		"in phase Disko (exit status 1).\n  What happened: ",
		"\n  Transcript:    " + logPath + "\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plain output lacks %q", want)
		}
	}
	if strings.Contains(stdout, "==> Install") {
		t.Error("a phase after the failure was shown as started")
	}
	if t.Failed() {
		t.Log(stdout)
	}
}

// triggerWriter collects what a command writes and calls fire once, when
// the output first contains marker. The renderers flush from a timer
// goroutine, hence the lock.
type triggerWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	marker string
	fire   func()
	fired  bool
}

func (w *triggerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if !w.fired && strings.Contains(w.b.String(), w.marker) {
		w.fired = true
		w.fire()
	}
	return n, err
}

func (w *triggerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// unreachableTarget is an install whose nixos-anywhere (the stand-in,
// offline) succeeds, and whose new system never answers: the extra files
// hold a host key, so bigbang waits for the reboot, on a loopback port that
// refuses connections.
func unreachableTarget(t *testing.T, extra ...string) (args []string, logPath string) {
	t.Helper()
	testutil.Need(t, "ssh-keygen")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	args, logPath, _ = installArgs(t, append([]string{"--yes-wipe", "127.0.0.1", "--skip-preflight", "--port", port, "--post-kexec-ssh-port", port,
		"--known-hosts", filepath.Join(t.TempDir(), "known_hosts")}, extra...)...)
	for i, a := range args {
		if a == "192.0.2.7" {
			args[i] = "127.0.0.1"
		}
	}
	keys := args[slices.Index(args, "--extra-files")+1]
	sshDir := filepath.Join(keys, "persistent", "etc", "ssh")
	if err := os.MkdirAll(sshDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := testhost.GenerateKey(sshDir, "ssh_host_ed25519_key", ""); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STANDIN_OFFLINE", "1")
	return args, logPath
}

// TestInstallInterruptedDuringReboot: Ctrl+C while bigbang waits for the
// new system is an interruption (exit 130, outcome aborted), not a failed
// verification.
func TestInstallInterruptedDuringReboot(t *testing.T) {
	args, logPath := unreachableTarget(t, "--output", "json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &triggerWriter{marker: "bigbang: waiting for 127.0.0.1", fire: cancel}
	done := make(chan struct{})
	var code int
	var stderr string
	go func() {
		defer close(done)
		code, stderr = runRootTo(ctx, "", out, args...)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("bigbang did not end within 60 s")
	}
	if code != cli.Interrupted {
		t.Fatalf("exit %d, want 130\nstdout:\n%s\nstderr:\n%s", code, out.String(), stderr)
	}
	if !strings.Contains(stderr, "interrupted; the transcript is in "+logPath) {
		t.Errorf("stderr does not say it was interrupted and where the transcript is: %s", stderr)
	}
	evs := parseJSONLines[jsonEvent](t, out.String())
	res, prev := evs[len(evs)-1], evs[len(evs)-2]
	if res.Type != "result" || res.Outcome != "aborted" || res.FailedPhase != "reboot" || res.Diagnosis.ID == "reboot.verify" {
		t.Errorf("result %+v, want aborted in reboot", res)
	}
	if prev.Type != "phase" || prev.Phase != "reboot" || prev.State != "failed" {
		t.Errorf("event before the result %+v, want reboot failed", prev)
	}
}

// TestInstallRebootTimeout: --reboot-timeout bounds the wait, and the
// failure points at the provider's serial console and says how to resume.
func TestInstallRebootTimeout(t *testing.T) {
	for _, output := range []string{"plain", "json"} {
		t.Run(output, func(t *testing.T) {
			args, logPath := unreachableTarget(t, "--output", output, "--reboot-timeout", "1500ms")
			start := time.Now()
			code, stdout, stderr := runRoot(context.Background(), "", args...)
			if code != cli.Failed {
				t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("the wait took %s with --reboot-timeout 1500ms", took)
			}
			wantResume := "bigbang install --host 127.0.0.1 --port "
			wantTail := " --phases reboot --skip-preflight --reboot-timeout 1.5s --log " + logPath + " --output " + output + " --yes-wipe 127.0.0.1"
			if output == "plain" {
				for _, want := range []string{"did not come back within 2s", "serial console", "  Resume with:   " + wantResume, wantTail + "\n"} {
					if !strings.Contains(stdout, want) {
						t.Errorf("plain output lacks %q:\n%s", want, stdout)
					}
				}
				return
			}
			var res struct {
				jsonEvent
				Resume string `json:"resume"`
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
				t.Fatal(err)
			}
			if res.Outcome != "failed" || res.FailedPhase != "reboot" || res.Diagnosis.ID != "reboot.verify" ||
				!strings.Contains(res.Diagnosis.Summary, "did not come back within 2s") || !strings.Contains(res.Diagnosis.Remedy, "serial console") {
				t.Errorf("result %+v", res)
			}
			if !strings.HasPrefix(res.Resume, wantResume) || !strings.HasSuffix(res.Resume, wantTail) {
				t.Errorf("resume %q, want %q…%q", res.Resume, wantResume, wantTail)
			}
		})
	}
}

// TestInstallTranscriptIncomplete: a transcript that could not be written
// whole is said so, in the output and on standard error, though the
// install itself succeeded.
func TestInstallTranscriptIncomplete(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full to make the transcript's writes fail")
	}
	for _, output := range []string{"plain", "json"} {
		t.Run(output, func(t *testing.T) {
			args, _, _ := installArgs(t, "--yes-wipe", "192.0.2.7", "--output", output, "--skip-preflight", "--log", "/dev/full")
			code, stdout, stderr := runRoot(context.Background(), "", args...)
			// The install goes on to the end; it then fails in reboot
			// only because the tree holds no host key to verify with.
			if code != cli.Failed || !strings.Contains(stdout, "reboot.unverified") && !strings.Contains(stdout, "NOT verified") {
				t.Fatalf("exit %d, want 1 from the unverified reboot (the install went on)\n%s\n%s", code, stdout, stderr)
			}
			const note = "bigbang: the transcript is incomplete: "
			if !strings.Contains(stderr, note) || !strings.Contains(stderr, "no space left on device") {
				t.Errorf("stderr does not say the transcript is incomplete: %s", stderr)
			}
			if output == "plain" {
				if !strings.Contains(stdout, "    "+note) {
					t.Errorf("plain output does not say the transcript is incomplete:\n%s", stdout)
				}
				return
			}
			evs := parseJSONLines[jsonEvent](t, stdout)
			var said bool
			for _, e := range evs[:len(evs)-1] {
				said = said || e.Type == "line" && strings.HasPrefix(e.Text, note)
			}
			if !said || evs[len(evs)-1].Type != "result" {
				t.Errorf("no line event says the transcript is incomplete before the result:\n%s", stdout)
			}
		})
	}
}

// TestInstallWritesReceipt: an install writes its receipt, 0600, whether
// it succeeded or failed, with the phases' times and the transcript.
func TestInstallWritesReceipt(t *testing.T) {
	for _, tc := range []struct {
		name, fail string
		want       map[steps.PhaseID]steps.PhaseState
	}{
		// nixos-anywhere finished; the tree holds no host key, so the new
		// system is not verified and the reboot is recorded as failed.
		{"finished, new system unverified", "", map[steps.PhaseID]steps.PhaseState{steps.PhaseConnect: steps.StateDone, steps.PhaseInstall: steps.StateDone, steps.PhaseReboot: steps.StateFailed}},
		{"failure at disko", "disko", map[steps.PhaseID]steps.PhaseState{steps.PhaseConnect: steps.StateDone, steps.PhaseDisko: steps.StateFailed, steps.PhaseReboot: steps.StatePending}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STANDIN_FAIL_PHASE", tc.fail)
			args, logPath, _ := installArgs(t, "--yes-wipe", "192.0.2.7", "--output", "json", "--skip-preflight")
			code, stdout, stderr := runRoot(context.Background(), "", args...)
			if code != cli.Failed {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			p := filepath.Join(os.Getenv("XDG_STATE_HOME"), "bigbang", "hosts", "192.0.2.7.json")
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("receipt %s: %v %v, want mode 0600", p, fi, err)
			}
			if !strings.Contains(stderr, "bigbang: receipt: "+p) {
				t.Errorf("stderr does not name the receipt: %s", stderr)
			}
			r, err := receipt.Read("192.0.2.7", 22)
			if err != nil {
				t.Fatal(err)
			}
			if r.Log != logPath || r.Flake != ".#vps-arm" || r.User != "opc" || r.InstalledAt.IsZero() {
				t.Errorf("receipt %+v", r)
			}
			got := map[steps.PhaseID]steps.PhaseState{}
			for _, pt := range r.Phases {
				got[pt.Phase] = pt.State
			}
			for ph, st := range tc.want {
				if got[ph] != st {
					t.Errorf("receipt: phase %s %q, want %q (%+v)", ph, got[ph], st, r.Phases)
				}
			}
		})
	}
}
