package steps

import (
	"net"
	"strconv"
	"strings"
)

// Target is the machine an install goes to, parsed once from the flags or
// from `user@host[:port]` as the seed writes it. Host never carries the
// brackets of an IPv6 literal: each consumer asks for the form it needs
// (OpenSSH's argv, Go's dialer, known_hosts, a file name) instead of
// re-parsing the text.
type Target struct {
	User string
	Host string // a name, an IPv4 address or a bare IPv6 literal
	Port int    // 0 or 22: the default
}

// ParseTarget reads `host`, `user@host`, `host:port`, `user@host:port`,
// `[v6]`, `[v6]:port`, `user@[v6]:port` or a bare IPv6 literal. User and
// Port are zero when the text does not give them. The host is validated as
// ValidateHost does, the user and port likewise.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	var t Target
	if i := strings.LastIndex(s, "@"); i >= 0 {
		t.User, s = s[:i], s[i+1:]
		if err := ValidateUser(t.User); err != nil {
			return Target{}, err
		}
	}
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return Target{}, invalid("host %q has an opening [ without its ]: write an IPv6 address as [2001:db8::1] or without brackets", s)
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return Target{}, invalid("host %q: after ] only :PORT may follow", s)
			}
			port = rest[1:]
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
	}
	if err := ValidateHost(host); err != nil {
		return Target{}, err
	}
	t.Host = host
	if port != "" {
		n, err := ValidatePort(port)
		if err != nil {
			return Target{}, err
		}
		t.Port = n
	}
	return t, nil
}

// IsIPv6 reports whether Host is an IPv6 literal.
func (t Target) IsIPv6() bool {
	ip := net.ParseIP(t.Host)
	return ip != nil && ip.To4() == nil
}

// port is the port with the default filled in.
func (t Target) port() int {
	if t.Port == 0 {
		return 22
	}
	return t.Port
}

// SSHArg is the `user@host` argument of OpenSSH's ssh, ssh-copy-id and
// nixos-anywhere: an IPv6 literal without brackets, which those tools
// cannot resolve ("Could not resolve hostname [::1]"); the port goes in -p.
func (t Target) SSHArg() string {
	if t.User == "" {
		return t.Host
	}
	return t.User + "@" + t.Host
}

// DialAddr is the address Go's dialer takes: host:port, IPv6 in brackets.
func (t Target) DialAddr() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.port()))
}

// KnownHostsName is the name known_hosts files the target under: the host
// alone on port 22, "[host]:port" on any other.
func (t Target) KnownHostsName() string {
	if t.port() == 22 {
		return t.Host
	}
	return "[" + t.Host + "]:" + strconv.Itoa(t.Port)
}

// FileName is the host as it goes into file names (transcripts, receipts):
// the characters a file name cannot hold become '_'.
func (t Target) FileName() string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, t.Host)
}

// String is the target as a person writes it: user@host, user@[v6] and
// ":port" when it is not 22.
func (t Target) String() string {
	h := t.Host
	if t.IsIPv6() {
		h = "[" + h + "]"
	}
	if t.port() != 22 {
		h += ":" + strconv.Itoa(t.Port)
	}
	if t.User != "" {
		h = t.User + "@" + h
	}
	return h
}

// WithUser returns t logged in as user.
func (t Target) WithUser(user string) Target {
	t.User = user
	return t
}

// WithPort returns t on port.
func (t Target) WithPort(port int) Target {
	t.Port = port
	return t
}

// Target is the configuration's target. Host, User and Port are already
// normalised by Normalize; brackets around an IPv6 literal are dropped.
func (c Config) Target() Target {
	return Target{User: c.User, Host: strings.TrimSuffix(strings.TrimPrefix(c.Host, "["), "]"), Port: c.Port}
}

// Normalize parses Host once at the edge: `user@host[:port]` fills in User
// and Port (over their defaults), and brackets around an IPv6 literal go.
// It returns the same errors as Validate for a host that cannot be read,
// with a hint to use the User and Port fields.
func (c *Config) Normalize() error {
	if c.Host == "" {
		return nil
	}
	t, err := ParseTarget(c.Host)
	if err != nil {
		return err
	}
	c.Host = t.Host
	if t.User != "" {
		c.User = t.User
	}
	if t.Port != 0 {
		c.Port = t.Port
	}
	return nil
}
