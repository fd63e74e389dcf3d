package steps

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPlanArgv(t *testing.T) {
	const na = "nix --extra-experimental-features 'nix-command flakes' run github:nix-community/nixos-anywhere/1.13.0 -- "
	base := DefaultConfig()
	base.Host = "203.0.113.7"
	cases := []struct {
		name       string
		mod        func(c *Config)
		env        PlanEnv
		wantCmd    string
		wantPhases string
		wantWhy    string // a decision whose text contains this
	}{
		{
			name:       "defaults, big aarch64 target from an x86_64 laptop",
			env:        PlanEnv{LocalSystem: "x86_64-linux", TargetSystem: "aarch64-linux", TargetRAM: 24 << 30},
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote opc@203.0.113.7",
			wantPhases: "connect,kexec,disko,install,keys,reboot",
			wantWhy:    "this machine is x86_64-linux, the target is aarch64-linux with 24.0 GiB",
		},
		{
			name:       "small target builds locally and saves memory",
			env:        PlanEnv{LocalSystem: "aarch64-linux", TargetSystem: "aarch64-linux", TargetRAM: 1 << 30},
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on local --no-disko-deps opc@203.0.113.7",
			wantPhases: "build,connect,kexec,disko,install,keys,reboot",
			wantWhy:    "too little to build there",
		},
		{
			name: "explicit local with key, port and ssh options",
			mod: func(c *Config) {
				c.BuildOn = "local"
				c.Identity = "/home/me/.ssh/id ed"
				c.Port = 2222
				c.SSHOptions = []string{"ControlMaster=no"}
			},
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on local -i '/home/me/.ssh/id ed' -p 2222 --ssh-option ControlMaster=no opc@203.0.113.7",
			wantPhases: "build,connect,kexec,disko,install,keys,reboot",
			wantWhy:    "Too many authentication failures",
		},
		{
			name:       "resume after kexec targets root",
			mod:        func(c *Config) { c.Phases = "disko,install,reboot"; c.BuildOn = "remote" },
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote --phases disko,install,reboot root@203.0.113.7",
			wantPhases: "connect,disko,install,keys,reboot",
			wantWhy:    "logs in as root on the installer",
		},
		{
			name:       "resume at key copy",
			mod:        func(c *Config) { c.Phases = "keys,reboot"; c.BuildOn = "remote" },
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote --phases install,reboot root@203.0.113.7",
			wantPhases: "connect,install,keys,reboot",
		},
		{
			name:       "target already in the installer skips kexec",
			env:        PlanEnv{TargetRAM: 8 << 30, TargetIsInstaller: true},
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote --phases disko,install,reboot root@203.0.113.7",
			wantPhases: "connect,disko,install,keys,reboot",
			wantWhy:    "already runs the NixOS installer",
		},
		{
			name: "own nixos-anywhere build, ram override, ipv6",
			mod: func(c *Config) {
				c.NixosAnywhere = "/opt/na/bin/nixos-anywhere"
				c.RAM = "2G"
				c.Host = "2001:db8::7"
				c.ExtraFiles = ""
			},
			wantCmd:    "/opt/na/bin/nixos-anywhere --flake '.#vps-arm' --build-on remote opc@2001:db8::7",
			wantPhases: "connect,kexec,disko,install,reboot",
			wantWhy:    "given with --ram",
		},
		{
			name: "post-kexec port and debug",
			env:  PlanEnv{TargetRAM: 8 << 30},
			mod: func(c *Config) {
				c.Port, c.PostKexecPort, c.Debug = 2222, 2200, true
			},
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote -p 2222 --post-kexec-ssh-port 2200 --debug opc@203.0.113.7",
			wantPhases: "connect,kexec,disko,install,keys,reboot",
			wantWhy:    "on port 2200 after kexec",
		},
		{
			name: "first-class options and a pass-through",
			env:  PlanEnv{TargetRAM: 8 << 30},
			mod: func(c *Config) {
				c.Kexec, c.HardwareConfig, c.HardwareConfigPath = "https://example.org/kexec.tar.gz", "nixos-facter", "./facter.json"
				c.DiskKeys, c.PrintBuildLogs, c.NoSubstituteOnDestination = []string{"/tmp/disk.key=./disk.key"}, true, true
				c.Extra = []string{"--copy-host-keys"}
			},
			wantCmd: na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote --kexec https://example.org/kexec.tar.gz " +
				"--generate-hardware-config nixos-facter ./facter.json --disk-encryption-keys /tmp/disk.key ./disk.key --print-build-logs " +
				"--no-substitute-on-destination --copy-host-keys opc@203.0.113.7",
			wantPhases: "connect,kexec,disko,install,keys,reboot",
			wantWhy:    "passed through to nixos-anywhere, not checked",
		},
		{
			name: "no kexec: no post-kexec port",
			env:  PlanEnv{TargetRAM: 8 << 30},
			mod: func(c *Config) {
				c.PostKexecPort, c.Phases = 2200, "disko,install,reboot"
			},
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote --phases disko,install,reboot root@203.0.113.7",
			wantPhases: "connect,disko,install,keys,reboot",
			wantWhy:    "logs in as root",
		},
		{
			name:       "unknown RAM never passes auto",
			wantCmd:    na + "--flake '.#vps-arm' --extra-files ./secrets-init/keys --build-on remote opc@203.0.113.7",
			wantPhases: "connect,kexec,disko,install,keys,reboot",
			wantWhy:    "decides silently",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			if c.mod != nil {
				c.mod(&cfg)
			}
			p, err := NewPlan(cfg, c.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Command(); got != c.wantCmd {
				t.Errorf("command\n got: %s\nwant: %s", got, c.wantCmd)
			}
			var ids []string
			for _, id := range p.Phases {
				ids = append(ids, string(id))
			}
			if got := strings.Join(ids, ","); got != c.wantPhases {
				t.Errorf("phases %s, want %s", got, c.wantPhases)
			}
			if c.wantWhy != "" {
				found := false
				for _, d := range p.Decisions {
					found = found || strings.Contains(d.What+" "+d.Why, c.wantWhy)
				}
				if !found {
					t.Errorf("no decision mentions %q: %+v", c.wantWhy, p.Decisions)
				}
			}
			if p.BuildOn != "local" && p.BuildOn != "remote" {
				t.Errorf("build-on %q: the plan must never leave it to auto", p.BuildOn)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Host = "h"
	cfg.NixosAnywhere = "  "
	if _, err := NewPlan(cfg, PlanEnv{}); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Errorf("empty command: %v", err)
	}
	cfg = DefaultConfig()
	cfg.Host = "h"
	cfg.Phases = "build,connect"
	if _, err := NewPlan(cfg, PlanEnv{}); err == nil || !strings.Contains(err.Error(), "names no phase") {
		t.Errorf("phases without a nixos-anywhere phase: %v", err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 1536: "1.5 KiB", 25125584896: "23.4 GiB", 200 << 30: "200.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %s, want %s", n, got, want)
		}
	}
}

// TestCheckJSONHasFix keeps the check object of DESIGN.md whole: a passing
// check still has its fix field, empty.
func TestCheckJSONHasFix(t *testing.T) {
	b, err := json.Marshal(Check{ID: "remote.ram", Status: StatusOK, Summary: "enough"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"remote.ram","status":"ok","summary":"enough","fix":""}`; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}
