package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
	"github.com/bigbang-nix/bigbang/steps/receipt"
)

// Stand-ins for the NixOS tools status reads, put first on the test host's
// PATH (sshd's SetEnv): the test host is a Debian machine without systemd.
var statusStubs = map[string]string{
	"nixos-version": `#!/bin/sh
case "$1" in --configuration-revision) echo 0123abcd;; *) echo "25.05.20250601.abcdef0 (Warbler)";; esac
`,
	"systemctl": `#!/bin/sh
case "$1" in
is-system-running) echo degraded;;
list-units)
  case "$*" in
  *--failed*) echo "● broken.service loaded failed failed Broken service";;
  *) printf '%s\n' "nixos-upgrade.timer loaded active waiting NixOS Upgrade" "nixos-upgrade.service loaded inactive dead NixOS Upgrade" "sshd.service loaded active running SSH";;
  esac;;
show)
  case "$2" in
  wedged.service) exec sleep 30;;
  *.timer) printf 'ActiveState=active\nResult=success\nNextElapseUSecRealtime=Mon 2026-11-30 03:00:00 UTC\nLastTriggerUSec=Mon 2026-11-23 03:00:04 UTC\n';;
  *) printf 'ActiveState=inactive\nResult=exit-code\nNextElapseUSecRealtime=\nLastTriggerUSec=n/a\n';;
  esac;;
esac
`,
	"readlink": `#!/bin/sh
[ "$1" = /nix/var/nix/profiles/system ] && { echo system-42-link; exit 0; }
exec /usr/bin/readlink "$@"
`,
}

const statusFlake = `{
  outputs = { self }: {
    nixosConfigurations.vps = {
      config.nixpkgs.hostPlatform = { system = "aarch64-linux"; };
      config.system.configurationRevision = "0123abcd";
      config.disko.devices.disk.main = {
        device = "/dev/disk/by-id/not-on-this-machine";
        type = "disk";
        content.type = "gpt";
        content.partitions.root = { size = "100%"; content = { type = "filesystem"; format = "ext4"; mountpoint = "/persistent"; }; };
      };
    };
  };
}
`

func TestStatusCommand(t *testing.T) {
	testutil.Need(t, "nix")
	stubs := t.TempDir()
	for name, body := range statusStubs {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h, kh := startTestHost(t, testhost.Options{Extra: "SetEnv PATH=" + stubs + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"})
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	flakeDir := writeFlakeDir(t, statusFlake)
	keys := t.TempDir()
	copyHostKey(t, h, keys)
	args := func(port string, extra ...string) []string {
		return append([]string{"status", "--host", h.IP, "--port", port, "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", kh, "--flake", flakeDir + "#vps", "--extra-files", keys, "--connect-timeout", "5s"}, extra...)
	}
	type statusJSON struct {
		Status engine.Status `json:"status"`
	}
	parse := func(t *testing.T, out string) engine.Status {
		t.Helper()
		var j statusJSON
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		return j.Status
	}

	t.Run("json: everything read", func(t *testing.T) {
		code, out, errOut := runRoot(context.Background(), "", args(h.PortString(), "--output", "json")...)
		st := parse(t, out)
		if code != cli.Failed { // broken.service failed
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if !st.Reachable || st.HostKey == nil || st.HostKey.Pinned != "known" || st.HostKey.MatchesExtraKey == nil || !*st.HostKey.MatchesExtraKey || st.HostKey.MatchesReceipt != nil {
			t.Fatalf("host key %+v", st.HostKey)
		}
		if st.NixOS != "25.05.20250601.abcdef0 (Warbler)" || st.Generation != 42 || st.State != "degraded" {
			t.Fatalf("system %+v", st)
		}
		if st.Revision.Same == nil || !*st.Revision.Same || st.Revision.Running != "0123abcd" {
			t.Fatalf("revision %+v", st.Revision)
		}
		wantUnits := []engine.UnitStatus{
			{Unit: "nixos-upgrade.service", Active: "inactive", Result: "exit-code"},
			{Unit: "nixos-upgrade.timer", Active: "active", Result: "success", NextRun: "Mon 2026-11-30 03:00:00 UTC", LastRun: "Mon 2026-11-23 03:00:04 UTC"},
		}
		if !reflect.DeepEqual(st.UpdateUnits, wantUnits) || !reflect.DeepEqual(st.FailedUnits, []string{"broken.service"}) {
			t.Fatalf("units %+v failed %v", st.UpdateUnits, st.FailedUnits)
		}
		if st.Drift == nil || st.Drift.Verdict != "reinstall" || len(st.Drift.Changes) != 1 || st.Drift.Changes[0].Kind != "added" {
			t.Fatalf("drift %+v", st.Drift)
		}
		// The hand-off: the timer's service last failed; the flake folder
		// is no git clone, so the pushed main is not known; the flake
		// opens no port.
		got := map[string]steps.Status{}
		for _, it := range st.Handoff {
			got[it.ID+" "+it.Subject] = it.Status
		}
		wantHandoff := map[string]steps.Status{"handoff.revision ": steps.StatusWarn, "handoff.timer nixos-upgrade.timer": steps.StatusOK,
			"handoff.unit nixos-upgrade.service": steps.StatusFail, "handoff.unit ": steps.StatusWarn, "handoff.ports ": steps.StatusSkip}
		if !reflect.DeepEqual(got, wantHandoff) {
			t.Fatalf("hand-off %v, want %v: %+v", got, wantHandoff, st.Handoff)
		}
	})

	t.Run("plain", func(t *testing.T) {
		_, out, _ := runRoot(context.Background(), "", args(h.PortString(), "--output", "plain", "--no-drift", "--unit", "my deploy.service")...)
		for _, want := range []string{"✔ reachable; host key SHA256:", "the key in the extra-files tree", "NixOS 25.05.20250601.abcdef0 (Warbler), generation 42, system degraded",
			"runs the local flake revision 0123abcd", "nixos-upgrade.timer: active, next run Mon 2026-11-30 03:00:00 UTC", "my deploy.service", "✘ failed units: broken.service"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("host key not the receipt's", func(t *testing.T) {
		if _, err := receipt.Write(receipt.Receipt{Host: h.IP, Port: h.Port, HostKeyFingerprint: "SHA256:old"}); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Join(state, "bigbang"))
		code, out, _ := runRoot(context.Background(), "", args(h.PortString(), "--output", "json", "--no-drift")...)
		st := parse(t, out)
		if code != cli.Failed || st.HostKey.MatchesReceipt == nil || *st.HostKey.MatchesReceipt || st.Receipt == nil {
			t.Fatalf("exit %d %+v", code, st.HostKey)
		}
	})

	t.Run("a wedged command on the target", func(t *testing.T) {
		_, out, _ := runRoot(context.Background(), "", args(h.PortString(), "--output", "json", "--no-drift", "--unit", "wedged.service", "--read-timeout", "2s")...)
		st := parse(t, out)
		if !strings.Contains(st.Error, "took longer than 2s") {
			t.Fatalf("error %q, want the read's time limit named", st.Error)
		}
		if st.NixOS == "" {
			t.Fatalf("what arrived before the limit was lost: %+v", st)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		port, err := testhost.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		code, out, _ := runRoot(context.Background(), "", args(strconv.Itoa(port), "--output", "json", "--no-drift")...)
		st := parse(t, out)
		if code != cli.Failed || st.Reachable || st.Error == "" {
			t.Fatalf("exit %d %+v", code, st)
		}
	})
}

// handoffStubs are the NixOS tools status reads, for the hand-off: the
// revision the machine runs and the update timer's state are files in the
// stubs folder, so that a test changes them between runs.
func handoffStubs(t *testing.T, dir string) {
	t.Helper()
	stubs := map[string]string{
		"nixos-version": `#!/bin/sh
case "$1" in --configuration-revision) cat ` + dir + `/revision;; *) echo "25.05.20250601.abcdef0 (Warbler)";; esac
`,
		"systemctl": `#!/bin/sh
case "$1" in
is-system-running) echo running;;
list-units)
  case "$*" in
  *--failed*) ;;
  *) printf '%s\n' "nixos-upgrade.timer loaded active waiting NixOS Upgrade" "nixos-upgrade.service loaded inactive dead NixOS Upgrade" "deploy-webhook.service loaded active running Deploy webhook";;
  esac;;
show)
  case "$2" in
  *.timer) cat ` + dir + `/timer;;
  nixos-upgrade.service) printf 'LoadState=loaded\nActiveState=inactive\nType=oneshot\nResult=success\n';;
  *) printf 'LoadState=loaded\nActiveState=active\nType=simple\nResult=success\n';;
  esac;;
esac
`,
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

const (
	timerScheduled   = "LoadState=loaded\nActiveState=active\nResult=success\nNextElapseUSecRealtime=Mon 2026-12-07 03:00:00 UTC\nLastTriggerUSec=Mon 2026-11-30 03:00:04 UTC\n"
	timerUnscheduled = "LoadState=loaded\nActiveState=inactive\nResult=success\nNextElapseUSecRealtime=n/a\nLastTriggerUSec=n/a\n"
)

// TestStatusHandoff proves each hand-off item against the real test sshd,
// ok and failing: the flake's clone with a pushed main, the machine's
// timer, and ports the test host listens on or not.
func TestStatusHandoff(t *testing.T) {
	testutil.Need(t, "nix")
	testutil.Need(t, "git")
	stubs := t.TempDir()
	handoffStubs(t, stubs)
	h, kh := startTestHost(t, testhost.Options{Extra: "SetEnv PATH=" + stubs + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n"})
	t.Setenv("XDG_STATE_HOME", t.TempDir())

	// The ports: one the machine listens on everywhere, one nothing
	// listens on, and one it listens on where a connect from here does not
	// arrive ([::1] only, reached at 127.0.0.1): as a port behind the
	// provider's firewall looks.
	open, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closed, err := testhost.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	blocked, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback for the blocked port: %v", err)
	}
	defer blocked.Close()
	openPort, blockedPort := open.Addr().(*net.TCPAddr).Port, blocked.Addr().(*net.TCPAddr).Port
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", blockedPort), time.Second); err == nil {
		c.Close()
		t.Skipf("127.0.0.1:%d answers: the blocked port is not blocked", blockedPort)
	}

	// The flake's clone, pushed to its origin; the machine runs that commit.
	flakeDir := writeFlakeDir(t, fmt.Sprintf(`{
  outputs = { self }: {
    nixosConfigurations.open.config = { nixpkgs.hostPlatform.system = "aarch64-linux"; networking.firewall.allowedTCPPorts = [ %[1]d ]; };
    nixosConfigurations.vps.config = { nixpkgs.hostPlatform.system = "aarch64-linux"; networking.firewall.allowedTCPPorts = [ %[1]d %[2]d %[3]d ]; };
  };
}
`, openPort, closed, blockedPort))
	base := t.TempDir()
	origin := filepath.Join(base, "origin.git")
	testutil.Git(t, base, "init", "-q", "--bare", origin)
	testutil.Git(t, flakeDir, "init", "-q")
	testutil.Git(t, flakeDir, "add", "flake.nix")
	testutil.Git(t, flakeDir, "commit", "-q", "-m", "the flake")
	testutil.Git(t, flakeDir, "remote", "add", "origin", origin)
	testutil.Git(t, flakeDir, "push", "-q", "-u", "origin", "main")
	running := testutil.Git(t, flakeDir, "rev-parse", "HEAD")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("revision", running+"\n")
	write("timer", timerScheduled)

	keys := t.TempDir()
	copyHostKey(t, h, keys)
	status := func(t *testing.T, name string, extra ...string) (int, engine.Status, string) {
		t.Helper()
		args := append([]string{"status", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", kh, "--flake", flakeDir + "#" + name, "--extra-files", keys, "--connect-timeout", "5s", "--no-drift"}, extra...)
		code, out, errOut := runRoot(context.Background(), "", append(args, "--output", "json")...)
		var j struct {
			Status engine.Status `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("not JSON: %v\n%s\n%s", err, out, errOut)
		}
		_, plain, _ := runRoot(context.Background(), "", append(args, "--output", "plain")...)
		if os.Getenv("BIGBANG_SHOW_STATUS") != "" {
			t.Log(plain)
		}
		return code, j.Status, plain
	}
	item := func(t *testing.T, st engine.Status, id, subject string) engine.HandoffItem {
		t.Helper()
		for _, it := range st.Handoff {
			if it.ID == id && it.Subject == subject {
				return it
			}
		}
		t.Fatalf("no hand-off item %s %s in %+v", id, subject, st.Handoff)
		return engine.HandoffItem{}
	}
	want := func(t *testing.T, it engine.HandoffItem, status steps.Status, texts ...string) {
		t.Helper()
		if it.Status != status {
			t.Errorf("%s %s: %s, want %s: %s | %s", it.ID, it.Subject, it.Status, status, it.Summary, it.Fix)
		}
		for _, s := range texts {
			if !strings.Contains(it.Summary+" | "+it.Fix, s) {
				t.Errorf("%s %s lacks %q: %s | %s", it.ID, it.Subject, s, it.Summary, it.Fix)
			}
		}
	}
	open1 := strconv.Itoa(openPort)

	t.Run("the hand-off holds", func(t *testing.T) {
		code, st, plain := status(t, "open")
		if code != cli.OK {
			t.Errorf("exit %d: %+v", code, st.Handoff)
		}
		for _, it := range st.Handoff {
			if it.Status != steps.StatusOK {
				t.Errorf("not ok: %+v", it)
			}
		}
		want(t, item(t, st, engine.HandoffRevision, ""), steps.StatusOK, "runs the pushed main (origin/main "+running[:12], "last fetched just now")
		want(t, item(t, st, engine.HandoffTimer, "nixos-upgrade.timer"), steps.StatusOK, "next run Mon 2026-12-07 03:00:00 UTC")
		want(t, item(t, st, engine.HandoffUnit, "deploy-webhook.service"), steps.StatusOK)
		want(t, item(t, st, engine.HandoffListen, open1), steps.StatusOK, "port "+open1+" listens (on ")
		want(t, item(t, st, engine.HandoffReach, open1), steps.StatusOK, "answers from here")
		if st.Pushed == nil || st.Pushed.Revision != running || len(st.Ports) != 1 || st.Ports[0].Reachable == nil || !*st.Ports[0].Reachable {
			t.Errorf("pushed %+v ports %+v", st.Pushed, st.Ports)
		}
		if !strings.Contains(plain, "The hand-off") || !strings.Contains(plain, "✔ port "+open1+" answers from here") || strings.Contains(plain, "fix:") {
			t.Errorf("plain:\n%s", plain)
		}
	})

	t.Run("a closed port and a blocked one", func(t *testing.T) {
		code, st, plain := status(t, "vps")
		if code != cli.Failed {
			t.Errorf("exit %d", code)
		}
		c, b := strconv.Itoa(closed), strconv.Itoa(blockedPort)
		want(t, item(t, st, engine.HandoffListen, open1), steps.StatusOK)
		want(t, item(t, st, engine.HandoffListen, c), steps.StatusFail, "nothing listens on port "+c)
		want(t, item(t, st, engine.HandoffReach, c), steps.StatusWarn, "does not answer from here either")
		want(t, item(t, st, engine.HandoffListen, b), steps.StatusOK, "listens (on ::1)")
		want(t, item(t, st, engine.HandoffReach, b), steps.StatusFail, "listens on the machine but does not answer from here", "provider's firewall", "VCN security list or NSG", "Add ingress rule")
		for _, s := range []string{"✘ nothing listens on port " + c, "✘ port " + b + " listens on the machine but does not answer", "    fix: open TCP " + b + " in the provider's firewall"} {
			if !strings.Contains(plain, s) {
				t.Errorf("plain lacks %q:\n%s", s, plain)
			}
		}
	})

	t.Run("an unscheduled timer", func(t *testing.T) {
		write("timer", timerUnscheduled)
		defer write("timer", timerScheduled)
		code, st, plain := status(t, "open")
		if code != cli.Failed {
			t.Errorf("exit %d", code)
		}
		want(t, item(t, st, engine.HandoffTimer, "nixos-upgrade.timer"), steps.StatusFail, "nixos-upgrade.timer is inactive", "sudo systemctl enable --now nixos-upgrade.timer")
		if !strings.Contains(plain, "fix: sudo systemctl enable --now nixos-upgrade.timer") {
			t.Errorf("plain:\n%s", plain)
		}
	})

	t.Run("a stale revision", func(t *testing.T) {
		// Someone pushes a commit that the machine never got; the
		// operator's clone fetched it.
		other := filepath.Join(base, "other")
		testutil.Git(t, base, "clone", "-q", origin, other)
		if err := os.WriteFile(filepath.Join(other, "README"), []byte("a change\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.Git(t, other, "add", "README")
		testutil.Git(t, other, "commit", "-q", "-m", "a change")
		testutil.Git(t, other, "push", "-q", "origin", "main")
		testutil.Git(t, flakeDir, "fetch", "-q")
		pushed := testutil.Git(t, flakeDir, "rev-parse", "origin/main")
		code, st, _ := status(t, "open")
		if code != cli.OK {
			t.Errorf("exit %d, want 0: a warning", code)
		}
		it := item(t, st, engine.HandoffRevision, "")
		// Committed just now: CI may still be building it, a warning.
		want(t, it, steps.StatusWarn, running[:12]+", 1 commit behind the pushed main (origin/main "+pushed[:12], "last fetched just now", "CI may still be building it", "nh os switch")
		// The same, an hour later: a failure.
		t.Setenv("GIT_COMMITTER_DATE", time.Now().Add(-time.Hour).Format(time.RFC3339))
		testutil.Git(t, other, "commit", "-q", "--allow-empty", "-m", "committed an hour ago")
		testutil.Git(t, other, "push", "-q", "origin", "main")
		testutil.Git(t, flakeDir, "fetch", "-q")
		code, st, _ = status(t, "open")
		if code != cli.Failed {
			t.Errorf("exit %d", code)
		}
		want(t, item(t, st, engine.HandoffRevision, ""), steps.StatusFail, "2 commits behind", "committed 1 hour ago", "was not deployed", "nh os switch")
	})
}
