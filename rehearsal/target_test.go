package rehearsal

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// TestPreflightNeverLeavesTheSimulation types real-looking hosts into the
// rehearsal's target: every dial must still reach the simulated VPS (its
// facts come back), never the network. The names do not resolve and the
// addresses are unroutable documentation ranges, so a real dial fails.
func TestPreflightNeverLeavesTheSimulation(t *testing.T) {
	b := newTestBackend(t)
	for _, tc := range []struct{ name, host, user string }{
		{"a host name", "vps.example.invalid", "opc"},
		{"an IPv4 address", "198.51.100.23", "root"},
		{"an IPv6 address", "2001:db8::7", "opc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := b.Config()
			cfg.Host, cfg.User, cfg.Port = tc.host, tc.user, 2222
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			emit := func(steps.Event) {}
			r, err := b.Engine().Preflight(ctx, cfg, engine.DialPolicy{}, emit)
			if err != nil || r.HostKey.Fingerprint != b.srv.HostKeyFingerprint() {
				t.Fatalf("first preflight of %s: %v, host key %+v, want the simulated VPS's key %s", tc.host, err, r.HostKey, b.srv.HostKeyFingerprint())
			}
			if r.HostKey.Status == engine.HostKeyNew {
				// The first name pins the simulated VPS; the others
				// meet the same, now known, key.
				r, err = b.Engine().Preflight(ctx, cfg, engine.DialPolicy{Approved: r.HostKey.Fingerprint}, emit)
			}
			if err != nil || r.TargetSystem != "aarch64-linux" || r.Blocking() != 0 {
				t.Fatalf("preflight of %s: %v, system %q, blocking %d: %+v", tc.host, err, r.TargetSystem, r.Blocking(), r.Checks)
			}
		})
	}
}

// TestPreflightRefusesAKeyNotApproved: the rehearsal's second connection,
// like the real one, trusts only the key the operator approved.
func TestPreflightRefusesAKeyNotApproved(t *testing.T) {
	b := newTestBackend(t)
	p := engine.DialPolicy{Approved: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	r, err := b.Engine().Preflight(context.Background(), b.Config(), p, func(steps.Event) {})
	if err != nil || r.Blocking() == 0 || r.HostKey.Status == engine.HostKeyKnown {
		t.Fatalf("err = %v, report %+v: want the host key change refused", err, r)
	}
	if data, _ := os.ReadFile(b.knownHosts); len(data) != 0 {
		t.Fatalf("known_hosts written: %q", data)
	}
}

// TestDemoPreflightBootChecks: the demo's preflight shows the boot-critical
// checks on their merits, as a real A1 run would: the boot volume's and
// NIC's virtio drivers against the demo flake's initrd, the demo key in
// opc's authorized_keys (which the kexec installer copies to root), and
// the ssh configuration of the simulated `ssh -G`.
func TestDemoPreflightBootChecks(t *testing.T) {
	b := newTestBackend(t)
	cfg := b.Config()
	cfg.AcceptNewHostKey = true
	r, err := b.Engine().Preflight(context.Background(), cfg, engine.DialPolicy{}, func(steps.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		remote.IDBootDrivers: {"virtio_scsi", "virtio_pci", "virtio_net", "enp0s6", "ttyAMA0"},
		remote.IDRootKeys:    {"/home/opc/.ssh/authorized_keys", "the kexec installer copies to root"},
		local.IDSSHConfig:    {"no connection sharing", "no proxy"},
	}
	for _, c := range r.Checks {
		words, ok := want[c.ID]
		if !ok {
			continue
		}
		t.Logf("%s %s: %s", c.ID, c.Status, c.Summary)
		delete(want, c.ID)
		if c.Status != steps.StatusOK {
			t.Errorf("%s is %s: %s (fix: %s)", c.ID, c.Status, c.Summary, c.Fix)
		}
		for _, w := range words {
			if !strings.Contains(c.Summary, w) {
				t.Errorf("%s does not say %q: %s", c.ID, w, c.Summary)
			}
		}
	}
	for id := range want {
		t.Errorf("the demo's preflight does not list %s", id)
	}
}
