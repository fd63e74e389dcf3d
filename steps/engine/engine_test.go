package engine

import (
	"reflect"
	"testing"

	"github.com/bigbang-nix/bigbang/sshexec"
	"github.com/bigbang-nix/bigbang/steps"
)

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
			o := New(World{}).dialOptions(tt.cfg, DialPolicy{})
			if !reflect.DeepEqual(o.Target, tt.want) || o.KnownHosts != "/k/known_hosts" || !o.AcceptNewHostKey {
				t.Errorf("got %+v\nwant target %+v", o, tt.want)
			}
			root := tt.want
			root.User = "root"
			got := SSHTarget(tt.cfg)
			got.User = "root"
			if !reflect.DeepEqual(got, root) {
				t.Errorf("the reboot target = %+v, want %+v", got, root)
			}
		})
	}
}
