package sshexec

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

const sshConfig = `Host vps !other
  HostName 203.0.113.7
  User opc
  Port 2222
  IdentityFile /keys/vps
  IdentitiesOnly yes
Host *
  User fallback
  IdentityFile /keys/default
`

func TestResolve(t *testing.T) {
	testutil.Need(t, "ssh")
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte(sshConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   Target
		want Resolved
	}{
		{"alias from the config", Target{Host: "vps"},
			Resolved{Alias: "vps", HostName: "203.0.113.7", User: "opc", Port: 2222, IdentityFiles: []string{"/keys/vps", "/keys/default"}, IdentitiesOnly: true, FromSSH: true}},
		{"flags win, -i first", Target{Host: "vps", User: "root", Port: 22, Identity: "/keys/mine"},
			Resolved{Alias: "vps", HostName: "203.0.113.7", User: "root", Port: 22, IdentityFiles: []string{"/keys/mine", "/keys/vps", "/keys/default"}, IdentitiesOnly: true, FromSSH: true}},
		{"IPv6 literal", Target{Host: "[2001:db8::1]"},
			Resolved{Alias: "2001:db8::1", HostName: "2001:db8::1", User: "fallback", Port: 22, IdentityFiles: []string{"/keys/default"}, FromSSH: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.SSHConfig = cfg
			got, err := Resolve(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			// The fallback reader agrees with ssh -G on these keywords.
			if tt.in.User == "" && tt.in.Port == 0 {
				fb := parseSSHConfig(sshConfig, tt.want.Alias)
				if fb.HostName != "" && fb.HostName != got.HostName || fb.User != got.User || !reflect.DeepEqual(fb.IdentityFiles, got.IdentityFiles) {
					t.Errorf("fallback reader: %+v", fb)
				}
			}
		})
	}
	if got := (Resolved{User: "root", HostName: "::1", Port: 2222}).String(); got != "root@[::1]:2222" {
		t.Errorf("String() = %q", got)
	}
}

func TestHostMatches(t *testing.T) {
	tests := []struct {
		patterns string
		host     string
		want     bool
	}{
		{"vps", "vps", true},
		{"*.example.org", "a.example.org", true},
		{"* !bad", "bad", false},
		{"10.0.0.?", "10.0.0.7", true},
		{"other", "vps", false},
	}
	for _, tt := range tests {
		t.Run(tt.patterns+" "+tt.host, func(t *testing.T) {
			if got := hostMatches(strings.Fields(tt.patterns), tt.host); got != tt.want {
				t.Errorf("got %v", got)
			}
		})
	}
}
