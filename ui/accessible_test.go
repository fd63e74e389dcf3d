package ui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/engine/enginetest"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// lineReader hands out one line per Read, as a terminal in canonical mode
// does: huh's accessible prompts read each answer with a new scanner, which
// would swallow the following answers from a reader that returns more.
type lineReader struct{ r *strings.Reader }

func (l lineReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, err := l.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		p[n] = b
		n++
		if b == '\n' {
			break
		}
	}
	return n, nil
}

// accessibleWorld is a fake world whose host key is new and whose install
// fails in connect: the accessible wizard drives the real engine over it.
func accessibleWorld(t *testing.T) *enginetest.Fake {
	d := &steps.Diagnosis{ID: "connect", Summary: "ssh refused", Remedy: "check the key"}
	return &enginetest.Fake{
		T: t, Dir: t.TempDir(), Facts: enginetest.A1(), Local: enginetest.A1Local(),
		HostKey: sshexec.HostKeyInfo{Type: "ssh-ed25519", Fingerprint: "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
		Child: &enginetest.Child{
			Events: []steps.Event{
				{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateRunning},
				{Type: steps.EventLine, Phase: steps.PhaseConnect, Text: "### Uploading install SSH keys ###"},
				{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateFailed},
			},
			Lines:  []string{"### Uploading install SSH keys ###"},
			Result: runner.Result{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseConnect, Diagnosis: d, ExitCode: 1},
		},
	}
}

// TestAccessibleFlow answers the plain prompts of ACCESSIBLE=1 as a screen
// reader user would: enter keeps every prefilled value, the new host key is
// trusted, a wrong host is refused at the wipe prompt.
func TestAccessibleFlow(t *testing.T) {
	tests := []struct {
		name       string
		answers    string
		wantErr    error
		wantOut    []string
		install    bool
		preflights int
		tick       time.Duration
	}{
		{name: "defaults kept, key trusted, host typed",
			answers: "\n\n\n\n\n\ny\n\n\nwrong\n203.0.113.7\n", install: true, preflights: 2,
			wantOut: []string{"Host [203.0.113.7]", "Preflight of opc@203.0.113.7 and .#vps-arm:", "trust it?",
				"Plan:", "Command: ", "Will be wiped: /dev/sda", "type 203.0.113.7 exactly to wipe it", "transcript: ",
				"Resume with:   bigbang --host 203.0.113.7", "--log ",
				"Wiping 203.0.113.7 in 5 seconds. Press Enter to stop.\n3 seconds.\n1 second.\nWiping 203.0.113.7 now.\n",
				"The server:    The server is untouched", "Explain the transcript with: bigbang explain "}},
		{name: "countdown stopped with enter", answers: "\n\n\n\n\n\ny\n\n\n203.0.113.7\n\n", wantErr: ErrAborted, preflights: 2, tick: time.Second,
			wantOut: []string{"Wiping 203.0.113.7 in 5 seconds. Press Enter to stop.\nCountdown stopped; nothing was changed."}},
		{name: "host key refused", answers: "\n\n\n\n\n\nn\n", wantErr: ErrAborted, preflights: 1,
			wantOut: []string{"trust it?"}},
		{name: "a field changed", answers: "198.51.100.9\nroot\n\n\n\n\ny\n\n\n198.51.100.9\n", install: true, preflights: 2,
			wantOut: []string{"Preflight of root@198.51.100.9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			countdownTick = max(tc.tick, time.Millisecond)
			t.Cleanup(func() { countdownTick = time.Second })
			w := accessibleWorld(t)
			e := engine.New(w.World())
			cfg := steps.DefaultConfig()
			cfg.Host, cfg.ExtraFiles, cfg.NixosAnywhere = "203.0.113.7", "", "true"
			var out bytes.Buffer
			res, err := RunAccessible(context.Background(), Options{Config: cfg, Engine: e}, lineReader{strings.NewReader(tc.answers)}, &out)
			text := ansi.Strip(out.String())
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v\n%s", err, tc.wantErr, text)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
			calls := strings.Join(w.Calls(), "\n")
			if n := strings.Count(calls, "local"); n != tc.preflights {
				t.Errorf("%d preflights, want %d:\n%s", n, tc.preflights, calls)
			}
			if strings.Contains(calls, "child ") != tc.install {
				t.Fatalf("installed: %v, want %v\n%s", !tc.install, tc.install, text)
			}
			if !tc.install {
				return
			}
			// y approved the key shown, and only that one, for the second
			// connection.
			fp := w.HostKey.Fingerprint
			if !strings.Contains(calls, "approved=\n") || !strings.Contains(calls, "approved="+fp+"\n") {
				t.Errorf("the dials did not approve exactly the key shown on the second connection:\n%s", calls)
			}
			if res.Outcome != steps.OutcomeFailed || !strings.Contains(text, "Connect") {
				t.Errorf("result %+v; the plain renderer's output:\n%s", res, text)
			}
		})
	}
}

// TestAccessibleRefusesImpossibleLocalBuild: in accessible mode a local
// build this machine cannot make is refused with the reason, judged on
// the preflight's facts, and the VPS build chosen after it is the plan's.
func TestAccessibleRefusesImpossibleLocalBuild(t *testing.T) {
	countdownTick = time.Millisecond
	t.Cleanup(func() { countdownTick = time.Second })
	w := accessibleWorld(t)
	w.Local.Build = local.BuildFacts{System: "x86_64-linux"}
	e := engine.New(w.World())
	cfg := steps.DefaultConfig()
	cfg.Host, cfg.ExtraFiles, cfg.NixosAnywhere = "203.0.113.7", "", "true"
	var out bytes.Buffer
	answers := "\n\n\n\n\n\ny\n\n2\n1\n203.0.113.7\n"
	_, err := RunAccessible(context.Background(), Options{Config: cfg, Engine: e}, lineReader{strings.NewReader(answers)}, &out)
	text := ansi.Strip(out.String())
	if err != nil && !strings.Contains(text, "Plan:") {
		t.Fatalf("error %v\n%s", err, text)
	}
	if !strings.Contains(text, "cannot build here: --build-on local, but this x86_64-linux machine cannot build aarch64-linux") {
		t.Errorf("the local build was not refused with its reason:\n%s", text)
	}
	if !strings.Contains(text, "Command: true --flake '.#vps-arm' --build-on remote opc@203.0.113.7\n") {
		t.Errorf("the plan does not build on the VPS:\n%s", text)
	}
	// The RAM was kept: the plan says what the target reports, not --ram.
	if strings.Contains(text, "given with --ram") || strings.Contains(text, "()") {
		t.Errorf("a kept RAM became --ram, or the wiped disk lists empty partitions:\n%s", text)
	}
}
