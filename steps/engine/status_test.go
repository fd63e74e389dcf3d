package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/engine/enginetest"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
)

// healthy is what the status script prints on a machine whose hand-off
// works: a scheduled update timer, its oneshot service that last
// succeeded, a running webhook, and sshd and the webhook listening on
// every address (0.0.0.0:22, [::]:9000).
var healthy = map[string]string{
	"head": "nixos_version=25.05\nrevision=aaaa1111\nstate=running\n",
	"listen": "listen_read=/proc/net/tcp\nlisten=00000000:0016\nlisten_read=/proc/net/tcp6\n" +
		"listen=00000000000000000000000000000000:2328\n",
	"timer":   "unit=nixos-upgrade.timer\nunit_LoadState=loaded\nunit_ActiveState=active\nunit_Result=success\nunit_NextElapseUSecRealtime=Mon 2026-12-07 03:00:00 UTC\n",
	"upgrade": "unit=nixos-upgrade.service\nunit_LoadState=loaded\nunit_Type=oneshot\nunit_ActiveState=inactive\nunit_Result=success\n",
	"webhook": "unit=deploy-webhook.service\nunit_LoadState=loaded\nunit_Type=simple\nunit_ActiveState=active\nunit_Result=success\n",
}

var now = time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)

type statusCase struct {
	name string
	// set changes the healthy world: the script's parts, the pushed main,
	// the connects.
	set        func(w *enginetest.Fake, cfg *steps.Config, parts map[string]string, pushed *local.Pushed, reach map[string]error)
	pushedErr  error
	wantFail   bool
	wantItem   string // id/subject of the item judged
	wantStatus steps.Status
	wantText   []string // in that item's summary and fix
}

func TestStatusHandoff(t *testing.T) {
	for _, tc := range []statusCase{
		{name: "healthy", wantItem: "handoff.revision", wantStatus: steps.StatusOK, wantText: []string{"the machine runs the pushed main (origin/main aaaa1111, last fetched 2 hours ago)"}},
		{name: "stale revision", wantFail: true, wantItem: "handoff.revision", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, _ map[string]string, p *local.Pushed, _ map[string]error) {
				p.Revision, p.Relation, p.Ahead, p.CommittedAt = "bbbb2222", local.RelBehind, 2, now.Add(-5*time.Hour)
			},
			wantText: []string{"aaaa1111, 2 commits behind the pushed main (origin/main bbbb2222", "committed 5 hours ago", "not deployed", "nh os switch", "journalctl -u deploy-webhook.service"}},
		{name: "just pushed", wantItem: "handoff.revision", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, _ *steps.Config, _ map[string]string, p *local.Pushed, _ map[string]error) {
				p.Revision, p.Relation, p.Ahead, p.CommittedAt = "bbbb2222", local.RelBehind, 1, now.Add(-5*time.Minute)
			},
			wantText: []string{"1 commit behind", "CI may still be building it"}},
		{name: "old fetch", wantItem: "handoff.revision", wantStatus: steps.StatusOK,
			set: func(_ *enginetest.Fake, _ *steps.Config, _ map[string]string, p *local.Pushed, _ map[string]error) {
				old := now.Add(-72 * time.Hour)
				p.FetchedAt = &old
			},
			wantText: []string{"last fetched 3 days ago: git fetch for what is pushed now"}},
		{name: "not pushed", wantItem: "handoff.revision", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, _ *steps.Config, _ map[string]string, p *local.Pushed, _ map[string]error) {
				p.Revision, p.Relation = "0000aaaa", local.RelAhead
			},
			wantText: []string{"not pushed", "git push"}},
		{name: "dirty", wantItem: "handoff.revision", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["head"] = strings.Replace(parts["head"], "revision=aaaa1111", "revision=aaaa1111-dirty", 1)
			},
			wantText: []string{"uncommitted changes", "commit and push"}},
		{name: "a receipt's dirty revision", wantItem: "handoff.revision", wantStatus: steps.StatusWarn,
			set: func(w *enginetest.Fake, cfg *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["head"] = "nixos_version=25.05\nrevision=\nstate=running\n"
				if _, err := w.World().Receipts.Write(receipt.Receipt{Host: cfg.Host, FlakeRevision: "dirty"}); err != nil {
					panic(err)
				}
			},
			wantText: []string{"the install receipt says the machine runs a build of uncommitted changes", "commit and push"}},
		{name: "no remote", pushedErr: fmt.Errorf("%w: the clone has no remote", local.ErrNoRemote), wantItem: "handoff.revision", wantStatus: steps.StatusWarn,
			wantText: []string{"the pushed main is not known", "git push -u origin main"}},
		{name: "no revision on the machine: the receipt's", wantItem: "handoff.revision", wantStatus: steps.StatusOK,
			set: func(w *enginetest.Fake, cfg *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["head"] = "nixos_version=25.05\nrevision=\nstate=running\n"
				if _, err := w.World().Receipts.Write(receipt.Receipt{Host: cfg.Host, FlakeRevision: "aaaa1111"}); err != nil {
					panic(err)
				}
			},
			wantText: []string{"the install receipt says the machine runs the pushed main"}},
		{name: "no revision at all", wantItem: "handoff.revision", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["head"] = "nixos_version=25.05\nrevision=\nstate=running\n"
			},
			wantText: []string{"names no flake revision", "system.configurationRevision"}},
		{name: "a flake that is no local clone", wantItem: "handoff.revision", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, cfg *steps.Config, _ map[string]string, _ *local.Pushed, _ map[string]error) {
				cfg.Flake = "github:example/infra#vps-arm"
			},
			wantText: []string{"not a local clone", "run status in the flake's git clone"}},
		{name: "timer inactive", wantFail: true, wantItem: "handoff.timer/nixos-upgrade.timer", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["timer"] = "unit=nixos-upgrade.timer\nunit_LoadState=loaded\nunit_ActiveState=inactive\nunit_Result=success\n"
			},
			wantText: []string{"nixos-upgrade.timer is inactive", "sudo systemctl enable --now nixos-upgrade.timer"}},
		{name: "timer without a next run", wantFail: true, wantItem: "handoff.timer/nixos-upgrade.timer", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["timer"] = "unit=nixos-upgrade.timer\nunit_LoadState=loaded\nunit_ActiveState=active\nunit_Result=success\nunit_NextElapseUSecRealtime=n/a\n"
			},
			wantText: []string{"no next run", "OnCalendar"}},
		{name: "no timer", wantItem: "handoff.timer", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				delete(parts, "timer")
			},
			wantText: []string{"no update timer found", "--unit"}},
		{name: "the last upgrade failed", wantFail: true, wantItem: "handoff.unit/nixos-upgrade.service", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["upgrade"] = strings.Replace(parts["upgrade"], "Result=success", "Result=exit-code", 1)
			},
			wantText: []string{"the last run failed (exit-code)", "journalctl -u nixos-upgrade.service"}},
		{name: "webhook failed", wantFail: true, wantItem: "handoff.unit/deploy-webhook.service", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["webhook"] = "unit=deploy-webhook.service\nunit_Type=simple\nunit_ActiveState=failed\nunit_Result=exit-code\n"
			},
			wantText: []string{"deploy-webhook.service failed (exit-code)", "journalctl -u deploy-webhook.service"}},
		{name: "webhook stopped", wantFail: true, wantItem: "handoff.unit/deploy-webhook.service", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["webhook"] = "unit=deploy-webhook.service\nunit_Type=simple\nunit_ActiveState=inactive\nunit_Result=success\n"
			},
			wantText: []string{"deploy-webhook.service is inactive", "enable --now deploy-webhook.service"}},
		{name: "a --unit the machine lacks", wantFail: true, wantItem: "handoff.unit/deploy-webhook.service", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["webhook"] = "unit=deploy-webhook.service\nunit_LoadState=not-found\nunit_ActiveState=inactive\n"
			},
			wantText: []string{"does not exist on the machine"}},
		{name: "a unit whose state was not read", wantItem: "handoff.unit/deploy-webhook.service", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				parts["webhook"] = "unit=deploy-webhook.service\n"
			},
			wantText: []string{"its state was not read"}},
		{name: "nothing listens", wantFail: true, wantItem: "handoff.listen/9000", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, reach map[string]error) {
				parts["listen"] = "listen_read=/proc/net/tcp\nlisten=00000000:0016\n"
				reach["127.0.0.1:9000"] = errors.New("connection refused")
			},
			wantText: []string{"nothing listens on port 9000", "start the service"}},
		{name: "the provider's firewall", wantFail: true, wantItem: "handoff.reach/9000", wantStatus: steps.StatusFail,
			set: func(_ *enginetest.Fake, _ *steps.Config, _ map[string]string, _ *local.Pushed, reach map[string]error) {
				reach["127.0.0.1:9000"] = errors.New("i/o timeout")
			},
			wantText: []string{"listens on the machine but does not answer from here", "provider's firewall", "VCN security list or NSG", "ingress rule", "TCP, destination port 9000"}},
		{name: "the sockets not read", wantItem: "handoff.listen/9000", wantStatus: steps.StatusWarn,
			set: func(_ *enginetest.Fake, _ *steps.Config, parts map[string]string, _ *local.Pushed, _ map[string]error) {
				delete(parts, "listen")
			},
			wantText: []string{"could not be read"}},
		{name: "the flake does not evaluate", wantItem: "handoff.ports", wantStatus: steps.StatusWarn,
			set: func(w *enginetest.Fake, _ *steps.Config, _ map[string]string, _ *local.Pushed, _ map[string]error) {
				w.Local.Flake, w.Local.FlakeErr = nil, errors.New("syntax error")
			},
			wantText: []string{"the ports the flake opens are not known", "syntax error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, cfg := enginetest.A1World(t, t.TempDir())
			cfg.Flake = t.TempDir() + "#vps-arm"
			w.Local.Flake.Config.Firewall.TCPPorts = []int{9000, 22, 9000}
			parts := map[string]string{}
			for k, v := range healthy {
				parts[k] = v
			}
			fetched := now.Add(-2 * time.Hour)
			pushed := local.Pushed{Ref: "origin/main", Revision: "aaaa1111", Relation: local.RelSame, CommittedAt: now.Add(-3 * time.Hour), FetchedAt: &fetched}
			reach := map[string]error{"127.0.0.1:22": nil, "127.0.0.1:9000": nil}
			if tc.set != nil {
				tc.set(w, &cfg, parts, &pushed, reach)
			}
			w.Remote = func(cmd string, stdout io.Writer) error {
				if !strings.HasPrefix(cmd, "sh -c ") {
					return fmt.Errorf("unexpected %q", cmd)
				}
				for _, k := range []string{"head", "listen", "timer", "upgrade", "webhook"} {
					io.WriteString(stdout, parts[k])
				}
				return nil
			}
			var gotRev string
			w.Pushed = func(dir, rev string) (local.Pushed, error) {
				gotRev = rev
				return pushed, tc.pushedErr
			}
			w.Reach = func(addr string) error {
				err, ok := reach[addr]
				if !ok {
					t.Errorf("unexpected connect to %s", addr)
				}
				return err
			}
			e := engine.New(w.World())
			e.Now = func() time.Time { return now }
			st, err := e.Status(context.Background(), engine.StatusRequest{Config: cfg, NoDrift: true})
			if err != nil {
				t.Fatal(err)
			}
			if st.Problems() != tc.wantFail {
				t.Errorf("problems %v, want %v: %+v", st.Problems(), tc.wantFail, st.Handoff)
			}
			if gotRev != "" && strings.HasSuffix(gotRev, "-dirty") {
				t.Errorf("the pushed main was asked about %q, a dirty revision git cannot know", gotRev)
			}
			var found *engine.HandoffItem
			for i, it := range st.Handoff {
				key := it.ID
				if it.Subject != "" {
					key += "/" + it.Subject
				}
				if it.Status != steps.StatusOK && it.Status != steps.StatusSkip && it.Fix == "" {
					t.Errorf("%s is %s without a fix", key, it.Status)
				}
				if key == tc.wantItem {
					found = &st.Handoff[i]
				}
			}
			if found == nil {
				t.Fatalf("no item %s in %+v", tc.wantItem, st.Handoff)
			}
			if found.Status != tc.wantStatus {
				t.Errorf("%s: %s, want %s: %+v", tc.wantItem, found.Status, tc.wantStatus, *found)
			}
			text := found.Summary + " | " + found.Fix
			for _, want := range tc.wantText {
				if !strings.Contains(text, want) {
					t.Errorf("%s lacks %q:\n%s", tc.wantItem, want, text)
				}
			}
			if tc.name == "healthy" {
				for _, it := range st.Handoff {
					if it.Status != steps.StatusOK {
						t.Errorf("healthy machine: %+v", it)
					}
				}
				if len(st.Ports) != 2 || st.Ports[0].Port != 22 || st.Ports[1].Port != 9000 || st.Ports[1].Addresses[0] != "::" {
					t.Errorf("ports %+v", st.Ports)
				}
			}
		})
	}
}
