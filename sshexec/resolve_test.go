package sshexec

import (
	"context"
	"errors"
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
				fb, _ := parseSSHConfig(sshConfig, tt.want.Alias)
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

// TestResolveOptions checks that --ssh-option reaches the resolution as it
// reaches nixos-anywhere's ssh, through ssh -G and through the fallback
// reader alike, with ssh's precedence.
func TestResolveOptions(t *testing.T) {
	testutil.Need(t, "ssh")
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte(sshConfig+"Host jumpy\n  ProxyJump bastion\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      Target
		want    Resolved // the fields compared: HostName, User, Port, HostKeyAlias, KnownHostsFile, first IdentityFile
		wantErr error
	}{
		{name: "port, user, identity, alias from options",
			in:   Target{Host: "10.0.0.9", Options: []string{"Port=2200", "User=bob", "IdentityFile=/keys/opt", "HostKeyAlias=vps-new"}},
			want: Resolved{HostName: "10.0.0.9", User: "bob", Port: 2200, HostKeyAlias: "vps-new", IdentityFiles: []string{"/keys/opt"}}},
		{name: "options win over the config file",
			in:   Target{Host: "vps", Options: []string{"Port=2201", "HostName=198.51.100.1"}},
			want: Resolved{HostName: "198.51.100.1", User: "opc", Port: 2201, IdentityFiles: []string{"/keys/vps"}}},
		{name: "-p wins over -o Port, -o User over -l (as in nixos-anywhere's ssh)",
			in:   Target{Host: "vps", Port: 22, User: "root", Options: []string{"Port=2202", "User=bob"}},
			want: Resolved{HostName: "203.0.113.7", User: "bob", Port: 22, IdentityFiles: []string{"/keys/vps"}}},
		{name: "UserKnownHostsFile",
			in:   Target{Host: "10.0.0.9", Options: []string{"UserKnownHostsFile=/kh/one /kh/two"}},
			want: Resolved{HostName: "10.0.0.9", User: "fallback", Port: 22, KnownHostsFile: "/kh/one", IdentityFiles: []string{"/keys/default"}}},
		{name: "ProxyJump option refused", in: Target{Host: "10.0.0.9", Options: []string{"ProxyJump=bastion"}}, wantErr: ErrUnsupportedOption},
		{name: "ProxyCommand option refused", in: Target{Host: "10.0.0.9", Options: []string{"ProxyCommand=nc %h %p"}}, wantErr: ErrUnsupportedOption},
		{name: "ProxyJump of the config refused", in: Target{Host: "jumpy"}, wantErr: ErrUnsupportedOption},
		{name: "ProxyJump=none lifts the config's", in: Target{Host: "jumpy", Options: []string{"ProxyJump=none"}},
			want: Resolved{HostName: "jumpy", User: "fallback", Port: 22, IdentityFiles: []string{"/keys/default"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.SSHConfig = cfg
			fields := func(r Resolved) Resolved {
				return Resolved{HostName: r.HostName, User: r.User, Port: r.Port, HostKeyAlias: r.HostKeyAlias,
					KnownHostsFile: r.KnownHostsFile, IdentityFiles: r.IdentityFiles[:1]}
			}
			got, err := Resolve(context.Background(), tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "bigbang's own connection does not support") {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if !reflect.DeepEqual(fields(got), tt.want) {
				t.Errorf("ssh -G: got  %+v\nwant %+v", fields(got), tt.want)
			}
			// The reader used when ssh is not installed agrees.
			fb, proxy := resolveFromFile(strings.Trim(tt.in.Host, "[]"), tt.in)
			if (proxy != "") != (tt.wantErr != nil) {
				t.Errorf("fallback proxy = %q", proxy)
			}
			if tt.wantErr == nil {
				fb.KnownHostsFile = knownHostsOption(tt.in.Options)
				if fb.HostName == "" {
					fb.HostName = tt.in.Host
				}
				if fb.Port == 0 {
					fb.Port = 22
				}
				if fb.User == "" {
					fb.User = got.User
				}
				if !reflect.DeepEqual(fields(fb), tt.want) {
					t.Errorf("fallback: got  %+v\nwant %+v", fields(fb), tt.want)
				}
			}
		})
	}
	alias := Resolved{HostName: "10.0.0.9", Port: 2222, HostKeyAlias: "vps-new"}
	if got := alias.KnownHostsAddress(); got != "vps-new" {
		t.Errorf("KnownHostsAddress with an alias = %q", got)
	}
	alias.HostKeyAlias = ""
	if got := alias.KnownHostsAddress(); got != "[10.0.0.9]:2222" {
		t.Errorf("KnownHostsAddress = %q", got)
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
