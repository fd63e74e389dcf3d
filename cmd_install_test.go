package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

var (
	standinOnce sync.Once
	standinBin  string
	standinErr  error
)

// buildStandin builds the stand-in nixos-anywhere once per test binary.
func buildStandin(t *testing.T) string {
	t.Helper()
	standinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "standin")
		if err != nil {
			standinErr = err
			return
		}
		standinBin = filepath.Join(dir, "nixos-anywhere")
		out, err := exec.Command("go", "build", "-o", standinBin, "./testdata/standin-nixos-anywhere").CombinedOutput()
		if err != nil {
			standinErr = err
			t.Logf("%s", out)
		}
	})
	if standinErr != nil {
		t.Fatalf("building the stand-in: %v", standinErr)
	}
	return standinBin
}

// runBigbang runs the command line in-process and returns its exit code
// and outputs.
func runBigbang(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var cfg steps.Config
	root := newRoot(&cfg)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	root.SilenceUsage = true
	err := root.ExecuteContext(ctx)
	if err != nil {
		errb.WriteString(err.Error())
	}
	return exitCode(ctx, err), out.String(), errb.String()
}

func installArgs(t *testing.T, extra ...string) (args []string, logPath, marker string) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(dir, "logs", "run.log")
	marker = filepath.Join(dir, "ran")
	t.Setenv("STANDIN_MARKER", marker)
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
		{"no --yes-wipe", []string{"--output", "json"}, exitUsage, "--yes-wipe 192.0.2.7"},
		{"--yes-wipe names another host", []string{"--yes-wipe", "192.0.2.8"}, exitUsage, "does not match the target host"},
		{"invalid port", []string{"--yes-wipe", "192.0.2.7", "--port", "0"}, exitUsage, "port 0 is out of range"},
		{"unknown output", []string{"--yes-wipe", "192.0.2.7", "--output", "xml"}, exitUsage, "--output"},
		{"nixos-anywhere command missing", []string{"--yes-wipe", "192.0.2.7", "--nixos-anywhere", "/nonexistent/nixos-anywhere"}, exitFailed, "not found"},
		{"nix missing", []string{"--yes-wipe", "192.0.2.7", "--nixos-anywhere", "nix run x --"}, exitFailed, "install Nix"},
		{"log folder cannot be written", []string{"--yes-wipe", "192.0.2.7", "--log", "/proc/version/x.log"}, exitFailed, "--log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, logPath, marker := installArgs(t, tc.extra...)
			if tc.name == "nix missing" {
				t.Setenv("PATH", t.TempDir())
			}
			code, stdout, stderr := runBigbang(context.Background(), args...)
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

func parseEvents(t *testing.T, out string) []jsonEvent {
	t.Helper()
	var evs []jsonEvent
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var e jsonEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %d is not a JSON event: %v: %q", i+1, err, l)
		}
		evs = append(evs, e)
	}
	return evs
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
		{"success", nil, exitOK, "success", "", ""},
		{"disko cannot create a partition", []string{"STANDIN_FAIL_PHASE=disko"}, exitFailed, "failed", "disko", "disk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			args, logPath, _ := installArgs(t, "--yes-wipe", "192.0.2.7", "--output", "json", "--skip-preflight")
			code, stdout, stderr := runBigbang(context.Background(), args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, stderr)
			}
			if !strings.Contains(stderr, logPath) {
				t.Fatalf("stderr does not name the transcript: %q", stderr)
			}
			evs := parseEvents(t, stdout)
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
			if got := bytes.Count(logged, []byte("\n")); got != lines {
				t.Fatalf("%d line events for %d lines in the transcript", lines, got)
			}
		})
	}
}

func TestInstallPlain(t *testing.T) {
	t.Setenv("STANDIN_FAIL_PHASE", "disko")
	args, logPath, _ := installArgs(t, "--yes-wipe", "192.0.2.7", "--output", "plain", "--skip-preflight")
	code, stdout, _ := runBigbang(context.Background(), args...)
	if code != exitFailed {
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
