package rehearsal

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// TestMain lets the test binary play the replay subcommand, as the bigbang
// binary does for the runner.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ReplayCommand {
		o := ReplayOptions{Speed: 1000}
		for i := 2; i+1 < len(os.Args); i++ {
			if os.Args[i] == "--fail-at" {
				o.FailAt = os.Args[i+1]
			}
		}
		os.Exit(Replay(context.Background(), os.Stdout, o))
	}
	os.Exit(m.Run())
}

func TestReplay(t *testing.T) {
	tests := []struct {
		name, failAt string
		code         int
		want, absent string
	}{
		{"whole run", "", 0, "### Done! ###", "Could not create partition"},
		{"fails in disko", "disko", 1, "Could not create partition", "### Building the system closure ###"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code := Replay(context.Background(), &out, ReplayOptions{Speed: 10000, FailAt: tc.failAt})
			s := out.String()
			if code != tc.code || !strings.Contains(s, tc.want) || strings.Contains(s, tc.absent) {
				t.Fatalf("code %d (want %d), output has %q: %v, has %q: %v", code, tc.code, tc.want, strings.Contains(s, tc.want), tc.absent, strings.Contains(s, tc.absent))
			}
			// The step lines of 1.13.0 come in their order.
			last := -1
			for _, step := range []string{"### Uploading install SSH keys ###", "### Switching system into kexec ###", "### Formatting hard drive with disko ###", "### Building the system closure ###", "### Copying extra files ###", "### Installing NixOS ###", "### Rebooting ###"} {
				i := strings.Index(s, step)
				if i < 0 {
					break
				}
				if i < last {
					t.Errorf("%s out of order", step)
				}
				last = i
			}
		})
	}
}

// TestBackend runs the rehearsal's preflight and install for real: the
// sshexec client against the simulated VPS, the runner over the replay.
func TestBackend(t *testing.T) {
	b := newTestBackend(t)
	ctx := context.Background()
	cfg := b.Config()
	var mu sync.Mutex
	var checks []steps.Check
	emit := func(e steps.Event) { mu.Lock(); checks = append(checks, e.Check); mu.Unlock() }

	r, err := b.Engine().Preflight(ctx, cfg, engine.DialPolicy{}, emit)
	if err != nil || r.HostKey.Status != engine.HostKeyNew {
		t.Fatalf("first preflight: %v, host key %q, want a new key to accept", err, r.HostKey.Status)
	}
	cfg.AcceptNewHostKey = true
	r, err = b.Engine().Preflight(ctx, cfg, engine.DialPolicy{}, emit)
	if err != nil {
		t.Fatal(err)
	}
	if r.TargetSystem != "aarch64-linux" || r.TargetRAM < 23*steps.GiB || len(r.Disks) != 1 || r.Disks[0].Device != "/dev/sda" || r.Blocking() != 0 {
		t.Fatalf("report: %s %d %+v blocking %d: %+v", r.TargetSystem, r.TargetRAM, r.Disks, r.Blocking(), r.Checks)
	}
	mu.Lock()
	n := len(checks)
	mu.Unlock()
	if n < len(r.Checks) {
		t.Errorf("only %d of %d checks were sent live", n, len(r.Checks))
	}

	plan, err := steps.NewPlan(cfg, steps.PlanEnv{TargetSystem: r.TargetSystem, LocalSystem: r.LocalSystem, TargetRAM: r.TargetRAM})
	if err != nil {
		t.Fatal(err)
	}
	var evs []steps.Event
	res, err := b.Engine().Install(ctx, engine.InstallRequest{Config: cfg, Plan: plan, Log: b.Engine().LogPath(cfg)}, func(e steps.Event) { evs = append(evs, e) })
	if err != nil || res.Outcome != steps.OutcomeSuccess {
		t.Fatalf("install: %v %+v", err, res)
	}
	done := map[steps.PhaseID]bool{}
	for _, e := range evs {
		if e.Type == steps.EventPhase && e.State == steps.StateDone {
			done[e.Phase] = true
		}
	}
	for _, p := range plan.Phases {
		if !done[p] {
			t.Errorf("phase %s never done", p)
		}
	}
	if last := evs[len(evs)-1]; last.Type != steps.EventResult || last.Outcome != steps.OutcomeSuccess {
		t.Errorf("last event %+v, want the success result after the reboot check", last)
	}
	if res.HostKeyFingerprint == "" || res.SSHCommand != "ssh root@"+DemoHost {
		t.Errorf("result lacks the host key or ssh line: %+v", res)
	}
	log, err := os.ReadFile(res.Log)
	if err != nil || !bytes.Contains(log, []byte("### Done! ###")) {
		t.Errorf("log %s incomplete: %v", res.Log, err)
	}
}
