package engine

import (
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

func TestResumeCommand(t *testing.T) {
	cfg := steps.DefaultConfig()
	cfg.Host, cfg.Identity = "203.0.113.7", "/k/id"
	plan := steps.Plan{BuildOn: "remote", Phases: []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseKeys, steps.PhaseReboot}}
	tests := []struct {
		failed steps.PhaseID
		want   string
	}{
		{steps.PhaseConnect, "bigbang --host 203.0.113.7 -i /k/id --build-on remote"},
		{steps.PhaseDisko, "bigbang --host 203.0.113.7 -i /k/id --build-on remote --phases disko,install,keys,reboot"},
		{steps.PhaseReboot, "bigbang --host 203.0.113.7 -i /k/id --build-on remote --phases reboot"},
		{"the transcript of the failed run", "bigbang --host 203.0.113.7 -i /k/id --build-on remote --log '/var/log/my run.log' --phases install,keys,reboot"},
		{"own known_hosts and ssh options", "bigbang --host 203.0.113.7 -i /k/id --build-on remote --known-hosts '/k/known hosts' --ssh-option ProxyJump=bastion --phases install,keys,reboot"},
	}
	for _, tc := range tests {
		t.Run(string(tc.failed), func(t *testing.T) {
			cfg := cfg
			if tc.failed == "the transcript of the failed run" {
				// One install keeps one transcript: the resumed run
				// appends to it.
				cfg.Log = "/var/log/my run.log"
				tc.failed = steps.PhaseInstall
			}
			if tc.failed == "own known_hosts and ssh options" {
				cfg.KnownHosts, cfg.SSHOptions = "/k/known hosts", []string{"ProxyJump=bastion"}
				tc.failed = steps.PhaseInstall
			}
			if got := ResumeCommand("bigbang", cfg, plan, tc.failed, ResumeStyle{}); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
