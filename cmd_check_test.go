package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/cli"
	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// runCheckCmd runs `bigbang check args…` in process.
func runCheckCmd(args ...string) (int, string, string) {
	return runRoot(context.Background(), "", append([]string{"check"}, args...)...)
}

// noFlake is a --flake that fails fast: the local checks then say so
// without evaluating anything, and the remote checks are what a test looks
// at. (The engine's own tests give the preflight a flake's expectations.)
func noFlake(t *testing.T) []string {
	return []string{"--flake", filepath.Join(t.TempDir(), "none") + "#vps-arm"}
}

type checkJSON struct {
	Checks   []steps.Check  `json:"checks"`
	Facts    map[string]any `json:"facts"`
	Blocking int            `json:"blocking"`
	Flake    any            `json:"flake"`
}

func TestCheckCommand(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	_, otherPub, err := testhost.GenerateKey(t.TempDir(), "other", "")
	if err != nil {
		t.Fatal(err)
	}
	common := func(kh string) []string {
		return []string{"--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey,
			"--known-hosts", kh, "--output", "json", "--connect-timeout", "10s"}
	}
	uname, _ := exec.Command("uname", "-m").Output()
	arch := strings.TrimSpace(string(uname))

	tests := []struct {
		name      string
		knownHost string // "this", "none", "changed"
		extra     []string
		wantCheck map[string]steps.Status
		wantFacts bool
	}{
		{name: "known host: facts of this machine", knownHost: "this", wantFacts: true,
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusOK, "remote.auth": steps.StatusOK, "remote.os": steps.StatusOK}},
		{name: "unknown host refused", knownHost: "none",
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusFail, "remote.ram": steps.StatusSkip}},
		{name: "unknown host accepted by flag", knownHost: "none", extra: []string{"--accept-new-host-key"}, wantFacts: true,
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusOK}},
		{name: "changed host key refused", knownHost: "changed",
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusFail, "remote.auth": steps.StatusSkip}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			switch tt.knownHost {
			case "this":
				h.WriteKnownHosts(kh)
			case "changed":
				f := strings.Fields(otherPub)
				if err := os.WriteFile(kh, []byte("[127.0.0.1]:"+h.PortString()+" "+f[0]+" "+f[1]+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := os.ReadFile(kh)
			code, stdout, msg := runCheckCmd(append(append(common(kh), noFlake(t)...), tt.extra...)...)
			var rep checkJSON
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s\n%s", err, stdout, msg)
			}
			if strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
				t.Errorf("more than one line of JSON:\n%s", stdout)
			}
			got := map[string]steps.Check{}
			for _, c := range rep.Checks {
				got[c.ID] = c
				if (c.Status == steps.StatusFail || c.Status == steps.StatusWarn) && c.Fix == "" {
					t.Errorf("%s is %s without a fix", c.ID, c.Status)
				}
			}
			for id, st := range tt.wantCheck {
				if got[id].Status != st {
					t.Errorf("%s = %q (%s), want %q", id, got[id].Status, got[id].Summary, st)
				}
			}
			for _, id := range remote.IDs {
				if _, ok := got[id]; !ok {
					t.Errorf("check %s missing", id)
				}
			}
			if !strings.HasPrefix(rep.Checks[0].ID, "local.") {
				t.Errorf("local checks not first: %s", rep.Checks[0].ID)
			}
			if rep.Blocking != steps.CountBlocking(rep.Checks) {
				t.Errorf("blocking = %d", rep.Blocking)
			}
			wantCode := 0
			if rep.Blocking > 0 {
				wantCode = 1
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d (%s)", code, wantCode, msg)
			}
			if !tt.wantFacts {
				if rep.Facts != nil {
					t.Errorf("facts without a connection: %v", rep.Facts)
				}
				if after, _ := os.ReadFile(kh); string(after) != string(before) {
					t.Errorf("known_hosts changed by a refused check: %q", after)
				}
				return
			}
			for _, k := range []string{"arch", "os_id", "os_variant_id", "mem_total_bytes", "is_root", "passwordless_sudo", "uefi", "hostname", "disks"} {
				if _, ok := rep.Facts[k]; !ok {
					t.Errorf("facts lack %q", k)
				}
			}
			if rep.Facts["arch"] != arch {
				t.Errorf("arch = %v, want %s", rep.Facts["arch"], arch)
			}
			disks, _ := rep.Facts["disks"].([]any)
			for _, d := range disks {
				m := d.(map[string]any)
				for _, k := range []string{"path", "size_bytes", "model", "partitions"} {
					if _, ok := m[k]; !ok {
						t.Errorf("disk lacks %q: %v", k, m)
					}
				}
			}
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no host", nil},
		{"port out of range", []string{"--host", "127.0.0.1", "--port", "0"}},
		{"bad output", []string{"--host", "127.0.0.1", "--output", "xml"}},
		{"bad host", []string{"--host", "300.1.2.3"}},
		{"argument", []string{"--host", "127.0.0.1", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, msg := runCheckCmd(tt.args...)
			if code != cli.Usage {
				t.Errorf("exit %d, want %d: %s", code, cli.Usage, msg)
			}
		})
	}
}

// TestCheckSSHOptions checks that --ssh-option reaches bigbang's own dial
// as it reaches nixos-anywhere: the port and user given only there, and a
// ProxyJump refused with what to do rather than bypassed.
func TestCheckSSHOptions(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	h.WriteKnownHosts(kh)
	tests := []struct {
		name     string
		options  []string
		wantAuth steps.Status
		wantText string // in the remote.auth summary or fix
	}{
		{name: "port and user", options: []string{"Port=" + h.PortString(), "User=" + h.User}, wantAuth: steps.StatusOK},
		{name: "proxy jump refused", options: []string{"Port=" + h.PortString(), "User=" + h.User, "ProxyJump=bastion"},
			wantAuth: steps.StatusFail, wantText: "ProxyJump=none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--host", h.IP, "-i", h.ClientKey, "--known-hosts", kh, "--output", "json"}, noFlake(t)...)
			for _, o := range tt.options {
				args = append(args, "--ssh-option", o)
			}
			_, stdout, msg := runCheckCmd(args...)
			var rep checkJSON
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s\n%s", err, stdout, msg)
			}
			var auth steps.Check
			for _, c := range rep.Checks {
				if c.ID == remote.IDAuth {
					auth = c
				}
			}
			if auth.Status != tt.wantAuth || !strings.Contains(auth.Summary+" "+auth.Fix, tt.wantText) {
				t.Errorf("remote.auth = %s: %s (fix: %s); want %s mentioning %q", auth.Status, auth.Summary, auth.Fix, tt.wantAuth, tt.wantText)
			}
		})
	}
}
