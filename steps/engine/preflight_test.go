package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
	"github.com/bigbang-nix/bigbang/steps/receipt"
	"github.com/bigbang-nix/bigbang/steps/remote"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// noLocal is a flake side with nothing to say.
type noLocal struct{}

func (noLocal) Local(context.Context, steps.Config) Local { return Local{} }
func (noLocal) Flake(context.Context, string) (*flake.Info, error) {
	return nil, errors.New("no flake in this test")
}

// TestTargetDefaultsFromReceipt prefills the wizard's form from the last
// install of the host and says so.
func TestTargetDefaultsFromReceipt(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	dir := filepath.Join(state, "bigbang", "hosts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := steps.DefaultConfig()
	cfg.Host = "198.51.100.4"
	e := New(World{Receipts: fileReceipts{}})
	if notes := e.Defaults(t.Context(), &cfg, Given{}, true); len(notes) != 0 || cfg.User != "opc" {
		t.Fatalf("without a receipt: notes %q, user %q", notes, cfg.User)
	}
	rec := `{"version":1,"host":"198.51.100.4","user":"ubuntu","port":2222,"flake":".#other","installed_at":"2026-01-02T03:04:05Z"}`
	p, err := receipt.Path(cfg.Host, 2222)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	notes := e.Defaults(t.Context(), &cfg, Given{}, true)
	if cfg.User != "ubuntu" || cfg.Port != 2222 || cfg.Flake != ".#other" {
		t.Errorf("config not prefilled: %+v", cfg)
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "last install of 198.51.100.4") {
		t.Errorf("notes %q", notes)
	}
}

// TestRebootLine: the line after the verified reboot says what is known,
// and never leaves blanks when nixos-version or systemctl say nothing.
func TestRebootLine(t *testing.T) {
	hk := sshexec.HostKeyInfo{Fingerprint: "SHA256:abc"}
	tests := []struct {
		name, version, state, want string
	}{
		{"both known", "25.05.20250601.abcdef0 (Warbler)", "running", "bigbang: NixOS 25.05.20250601.abcdef0 (Warbler) is up (running); host key SHA256:abc matches"},
		{"no nixos-version", "", "degraded", "bigbang: the new system answered with the expected host key SHA256:abc; nixos-version is not available; systemctl is-system-running says degraded"},
		{"neither", "", "", "bigbang: the new system answered with the expected host key SHA256:abc; nixos-version is not available; systemctl is-system-running gave no answer"},
		{"no system state", "25.05", "", "bigbang: the new system answered with the expected host key SHA256:abc; it runs NixOS 25.05; systemctl is-system-running gave no answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rebootLine(sshexec.RebootReport{HostKey: hk, NixOSVersion: tc.version, SystemState: tc.state})
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if strings.Contains(got, "  ") || strings.Contains(got, "()") {
				t.Errorf("blanks in %q", got)
			}
		})
	}
}

// TestPhaseTimes: the receipt's phase times are the runner's, with the
// reboot's end set by the verification.
func TestPhaseTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ps := []runner.PhaseTime{
		{Phase: steps.PhaseConnect, State: steps.StateDone, Start: at(1), End: at(3)},
		{Phase: steps.PhaseInstall, State: steps.StateFailed, Start: at(3), End: at(9)},
		{Phase: steps.PhaseReboot, State: steps.StateRunning, Start: at(9)},
	}
	got := phaseTimes(endPhase(ps, steps.PhaseReboot, steps.StateDone, at(12)))
	want := []receipt.PhaseTime{
		{Phase: steps.PhaseConnect, State: steps.StateDone, Seconds: 2},
		{Phase: steps.PhaseInstall, State: steps.StateFailed, Seconds: 6},
		{Phase: steps.PhaseReboot, State: steps.StateDone, Seconds: 3},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("times %+v\nwant  %+v", got, want)
	}
	if ps[2].State != steps.StateRunning {
		t.Error("endPhase changed the runner's list in place")
	}
}

// TestRebootDiagnosis: sshexec's errors say what happened and what to do;
// the diagnosis keeps both apart, and a timeout points at the serial
// console.
func TestRebootDiagnosis(t *testing.T) {
	err := fmt.Errorf("verifying the reboot: %w", &sshexec.Error{Kind: sshexec.ErrRebootTimeout,
		Summary: "127.0.0.1:22 did not come back within 10m0s", Fix: "open the provider's serial console"})
	d := rebootDiagnosis(err, "203.0.113.7")
	if d.ID != "reboot.verify" || d.Summary != "127.0.0.1:22 did not come back within 10m0s" ||
		d.Remedy != "open the provider's serial console; then run bigbang status --host 203.0.113.7" {
		t.Errorf("diagnosis %+v", d)
	}
	d = rebootDiagnosis(errors.New("verifying the reboot: system state probe: EOF"), "203.0.113.7")
	if d.Summary != "verifying the reboot: system state probe: EOF" || !strings.Contains(d.Remedy, "provider's console") {
		t.Errorf("diagnosis %+v", d)
	}
}

// TestPreflightTrustsOnlyTheApprovedKey is the wizard's second connection
// against a real sshd: after the operator's y it trusts the key shown on
// the first connection and nothing else. When the host now offers another
// key, the preflight refuses it with a blocking check and known_hosts keeps
// its exact content; when it offers the approved key, the key is saved.
func TestPreflightTrustsOnlyTheApprovedKey(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	_, otherPub, err := testhost.GenerateKey(t.TempDir(), "other", "")
	if err != nil {
		t.Fatal(err)
	}
	otherFP := testhost.Fingerprint(t, otherPub)
	hostFP := testhost.Fingerprint(t, h.HostKeyPub())
	for _, tc := range []struct {
		name      string
		approved  string
		wantBlock bool
	}{
		{"the host offers another key than the one approved", otherFP, true},
		{"the host offers the approved key", hostFP, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			kh := filepath.Join(dir, "known_hosts")
			const before = "unrelated.example " + "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
			if err := os.WriteFile(kh, []byte(before), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := steps.DefaultConfig()
			cfg.Host, cfg.Port, cfg.User, cfg.Identity, cfg.KnownHosts = h.IP, h.Port, h.User, h.ClientKey, kh
			cfg.Flake, cfg.ExtraFiles = filepath.Join(dir, "noflake")+"#vps", filepath.Join(dir, "keys")
			cfg.SSHOptions = []string{"UserKnownHostsFile=" + kh}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			e := New(World{Dialer: SSHDialer{}, Local: noLocal{}, AgentSocket: "none"})
			rep, err := e.Preflight(ctx, cfg, DialPolicy{Approved: tc.approved}, func(steps.Event) {})
			if err != nil && !tc.wantBlock {
				t.Fatalf("preflight: %v", err)
			}
			var hk steps.Check
			for _, c := range rep.Checks {
				if c.ID == remote.IDHostKey {
					hk = c
				}
			}
			data, _ := os.ReadFile(kh)
			if tc.wantBlock {
				if hk.Status != steps.StatusFail || !strings.Contains(hk.Summary, "changed between the two connections") ||
					!strings.Contains(hk.Fix, otherFP) || !strings.Contains(hk.Fix, hostFP) {
					t.Fatalf("host key check %+v, want the change refused with both fingerprints", hk)
				}
				if string(data) != before {
					t.Fatalf("known_hosts changed: %q", data)
				}
				return
			}
			if rep.HostKey.Status != HostKeyKnown || !strings.Contains(string(data), strings.Fields(h.HostKeyPub())[1]) {
				t.Fatalf("host key %+v, known_hosts %q: want the approved key saved", rep.HostKey, data)
			}
		})
	}
}
