package ui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
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

// recordingBackend answers the preflight with a report and records the
// install it is asked to run.
type recordingBackend struct {
	fakeBackend
	preflights []steps.Config
	approved   []string // the key each preflight was told was approved
	installed  *InstallRequest
}

func (b *recordingBackend) Preflight(ctx context.Context, cfg steps.Config, emit func(steps.Event)) (Report, error) {
	b.preflights = append(b.preflights, cfg)
	b.approved = append(b.approved, ApprovedHostKey(ctx))
	rep := b.report
	if ApprovedHostKey(ctx) == rep.HostKey.Fingerprint {
		rep.HostKey.Status = HostKeyKnown
	}
	for _, c := range rep.Checks {
		emit(steps.Event{Type: steps.EventCheck, Check: c})
	}
	return rep, nil
}

func (b *recordingBackend) Install(_ context.Context, req InstallRequest, sink steps.Sink) (InstallResult, error) {
	b.installed = &req
	sink(steps.Event{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateRunning})
	sink(steps.Event{Type: steps.EventLine, Phase: steps.PhaseConnect, Text: "### Uploading install SSH keys ###"})
	sink(steps.Event{Type: steps.EventPhase, Phase: steps.PhaseConnect, State: steps.StateFailed})
	d := &steps.Diagnosis{ID: "connect", Summary: "ssh refused", Remedy: "check the key"}
	sink(steps.Event{Type: steps.EventResult, Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseConnect, Diagnosis: d})
	return InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseConnect, Diagnosis: d, Log: req.Log}, nil
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
	}{
		{name: "defaults kept, key trusted, host typed",
			answers: "\n\n\n\n\n\ny\n\n\nwrong\n203.0.113.7\n", install: true, preflights: 2,
			wantOut: []string{"Host [203.0.113.7]", "Preflight of opc@203.0.113.7 and .#vps-arm:", "trust it?",
				"Plan:", "Command: ", "WIPED: /dev/sda", "type 203.0.113.7 exactly to wipe it", "Log: /tmp/bigbang/203.0.113.7.log",
				"Resume: bigbang --host 203.0.113.7", "--log /tmp/bigbang/203.0.113.7.log"}},
		{name: "host key refused", answers: "\n\n\n\n\n\nn\n", wantErr: ErrAborted, preflights: 1,
			wantOut: []string{"trust it?"}},
		{name: "a field changed", answers: "198.51.100.9\nroot\n\n\n\n\ny\n\n\n198.51.100.9\n", install: true, preflights: 2,
			wantOut: []string{"Preflight of root@198.51.100.9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := a1Report()
			rep.HostKey.Status = HostKeyNew
			b := &recordingBackend{fakeBackend: fakeBackend{report: rep}}
			cfg := steps.DefaultConfig()
			cfg.Host, cfg.ExtraFiles = "203.0.113.7", ""
			var out bytes.Buffer
			res, err := RunAccessible(context.Background(), Options{Config: cfg, Backend: b}, lineReader{strings.NewReader(tc.answers)}, &out)
			text := ansi.Strip(out.String())
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v\n%s", err, tc.wantErr, text)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
			if len(b.preflights) != tc.preflights {
				t.Errorf("%d preflights, want %d", len(b.preflights), tc.preflights)
			}
			if (b.installed != nil) != tc.install {
				t.Fatalf("installed: %v, want %v\n%s", b.installed != nil, tc.install, text)
			}
			if !tc.install {
				return
			}
			if got := b.installed.Config; got.AcceptNewHostKey || got.Host != b.preflights[0].Host {
				t.Errorf("install config %+v", got)
			}
			// y approved the key shown, and only that one, for the second
			// connection.
			if want := []string{"", rep.HostKey.Fingerprint}; strings.Join(b.approved, ",") != strings.Join(want, ",") {
				t.Errorf("approved keys per preflight %q, want %q", b.approved, want)
			}
			if res.Outcome != steps.OutcomeFailed || !strings.Contains(text, "Connect") {
				t.Errorf("result %+v; the plain renderer's output:\n%s", res, text)
			}
		})
	}
}
