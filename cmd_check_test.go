package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

// runCheckCmd runs `bigbang check args…` in process.
func runCheckCmd(args ...string) (int, string, string) {
	return runRoot(context.Background(), "", append([]string{"check"}, args...)...)
}

func withLocalChecks(t *testing.T, f func(context.Context, *steps.Config) ([]steps.Check, steps.TargetExpect, any)) {
	saved := localChecks
	localChecks = f
	t.Cleanup(func() { localChecks = saved })
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
		local     func(context.Context, *steps.Config) ([]steps.Check, steps.TargetExpect, any)
		wantCheck map[string]steps.Status
		wantFacts bool
		wantFlake bool
	}{
		{name: "known host: facts of this machine", knownHost: "this", wantFacts: true,
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusOK, "remote.auth": steps.StatusOK, "remote.os": steps.StatusOK}},
		{name: "unknown host refused", knownHost: "none",
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusFail, "remote.ram": steps.StatusSkip}},
		{name: "unknown host accepted by flag", knownHost: "none", extra: []string{"--accept-new-host-key"}, wantFacts: true,
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusOK}},
		{name: "changed host key refused", knownHost: "changed",
			wantCheck: map[string]steps.Status{"remote.hostkey": steps.StatusFail, "remote.auth": steps.StatusSkip}},
		{name: "local checks first, flake expectations used", knownHost: "this", wantFacts: true, wantFlake: true,
			local: func(context.Context, *steps.Config) ([]steps.Check, steps.TargetExpect, any) {
				return []steps.Check{{ID: "local.flake", Status: steps.StatusOK, Summary: "flake evaluates"}},
					steps.TargetExpect{System: "riscv64-linux", Disks: []steps.DiskNeed{{Device: "/dev/nonexistent", MinSizeBytes: 1}}},
					map[string]string{"attribute": "vps-arm"}
			},
			wantCheck: map[string]steps.Status{"local.flake": steps.StatusOK, "remote.arch": steps.StatusFail, "remote.disk": steps.StatusFail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withLocalChecks(t, tt.local)
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
			code, stdout, msg := runCheckCmd(append(common(kh), tt.extra...)...)
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
			if tt.local != nil && rep.Checks[0].ID != "local.flake" {
				t.Errorf("local checks not first: %s", rep.Checks[0].ID)
			}
			if (rep.Flake != nil) != tt.wantFlake {
				t.Errorf("flake = %v", rep.Flake)
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
	withLocalChecks(t, nil)
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
			if code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, msg)
			}
		})
	}
}

func TestCheckHumanOutput(t *testing.T) {
	withLocalChecks(t, nil)
	var buf bytes.Buffer
	printChecks(&buf, checkReport{Checks: []steps.Check{
		{ID: "remote.os", Status: steps.StatusOK, Summary: "Linux"},
		{ID: "remote.ram", Status: steps.StatusFail, Summary: "0.5 GiB RAM", Fix: "bigger shape"},
		{ID: "remote.uefi", Status: steps.StatusSkip, Summary: "not compared"},
	}, Blocking: 1})
	want := "✔ remote.os    Linux\n✘ remote.ram   0.5 GiB RAM\n               fix: bigger shape\n– remote.uefi  not compared\n\n1 problem blocks the install: fix it and run bigbang check again.\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
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
			withLocalChecks(t, nil)
			args := []string{"--host", h.IP, "-i", h.ClientKey, "--known-hosts", kh, "--output", "json"}
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

// TestTargetDialOptions checks the one builder of dial options that the
// wizard, the install's preflight and reboot verification use.
func TestTargetDialOptions(t *testing.T) {
	tests := []struct {
		name string
		cfg  steps.Config
		want sshexec.Target
	}{
		{"port 22 left to ssh, as nixos-anywhere gets no -p",
			steps.Config{Host: "vps", User: "opc", Port: 22, SSHOptions: []string{"Port=2222"}},
			sshexec.Target{Host: "vps", User: "opc", Options: []string{"Port=2222"}}},
		{"other port, key",
			steps.Config{Host: "vps", User: "opc", Port: 2200, Identity: "/k/id"},
			sshexec.Target{Host: "vps", User: "opc", Port: 2200, Identity: "/k/id"}},
		{"resumed after kexec: the installer takes root",
			steps.Config{Host: "vps", User: "opc", Port: 22, Phases: "disko,install,reboot"},
			sshexec.Target{Host: "vps", User: "root"}},
		{"resumed with kexec: still the login user",
			steps.Config{Host: "vps", User: "opc", Port: 22, Phases: "kexec,disko,install,reboot"},
			sshexec.Target{Host: "vps", User: "opc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.KnownHosts, tt.cfg.AcceptNewHostKey = "/k/known_hosts", true
			o := targetDialOptions(tt.cfg, nil)
			if !reflect.DeepEqual(o.Target, tt.want) || o.KnownHosts != "/k/known_hosts" || !o.AcceptNewHostKey {
				t.Errorf("got %+v\nwant target %+v", o, tt.want)
			}
			root := tt.want
			root.User = "root"
			if got := rebootTarget(tt.cfg); !reflect.DeepEqual(got, root) {
				t.Errorf("rebootTarget = %+v, want %+v", got, root)
			}
		})
	}
}
