package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
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
