package steps

import (
	"errors"
	"testing"
)

// TestParseTarget: every form the operator may type becomes the same
// parts, and each consumer's rendering is what its tool accepts (OpenSSH's
// argv takes an IPv6 literal without brackets; Go's dialer and known_hosts
// want them).
func TestParseTarget(t *testing.T) {
	tests := []struct {
		in                          string
		want                        Target
		sshArg, dial, known, String string
	}{
		{"203.0.113.7", Target{Host: "203.0.113.7"}, "203.0.113.7", "203.0.113.7:22", "203.0.113.7", "203.0.113.7"},
		{"opc@203.0.113.7", Target{User: "opc", Host: "203.0.113.7"}, "opc@203.0.113.7", "203.0.113.7:22", "203.0.113.7", "opc@203.0.113.7"},
		{"opc@vps.example.com:2222", Target{User: "opc", Host: "vps.example.com", Port: 2222}, "opc@vps.example.com", "vps.example.com:2222", "[vps.example.com]:2222", "opc@vps.example.com:2222"},
		{"2001:db8::7", Target{Host: "2001:db8::7"}, "2001:db8::7", "[2001:db8::7]:22", "2001:db8::7", "[2001:db8::7]"},
		{"root@[::1]:2200", Target{User: "root", Host: "::1", Port: 2200}, "root@::1", "[::1]:2200", "[::1]:2200", "root@[::1]:2200"},
		{"[2001:db8::7]", Target{Host: "2001:db8::7"}, "2001:db8::7", "[2001:db8::7]:22", "2001:db8::7", "[2001:db8::7]"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTarget(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("ParseTarget = %+v, want %+v", got, tc.want)
			}
			if got.SSHArg() != tc.sshArg || got.DialAddr() != tc.dial || got.KnownHostsName() != tc.known || got.String() != tc.String {
				t.Errorf("renderings %q %q %q %q, want %q %q %q %q", got.SSHArg(), got.DialAddr(), got.KnownHostsName(), got.String(),
					tc.sshArg, tc.dial, tc.known, tc.String)
			}
		})
	}
	for _, bad := range []string{"", "Bad User@host", "opc@300.1.2.3", "host:99999", "[::1", "[::1]x", "host:port"} {
		if _, err := ParseTarget(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseTarget(%q) = %v, want an invalid-input error", bad, err)
		}
	}
}

// TestNormalize: --host user@host:port fills in the user and the port, and
// a bare host keeps the flags' values.
func TestNormalize(t *testing.T) {
	c := DefaultConfig()
	c.Host = "admin@[2001:db8::7]:2222"
	if err := c.Normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Host != "2001:db8::7" || c.User != "admin" || c.Port != 2222 {
		t.Errorf("normalised to %s %s %d", c.User, c.Host, c.Port)
	}
	c = DefaultConfig()
	c.Host, c.User, c.Port = "vps", "root", 2200
	if err := c.Normalize(); err != nil || c.User != "root" || c.Port != 2200 || c.Target().String() != "root@vps:2200" {
		t.Errorf("bare host changed the flags: %+v %v", c, err)
	}
}
