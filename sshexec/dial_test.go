package sshexec

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bigbang-nix/bigbang/internal/testhost"
	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps/remote"
)

func TestDialAuth(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	kh := knownHostsFile(t, h)

	// A passphrase-protected key, authorized next to the test host's key.
	ppKey, ppPub, err := testhost.GenerateKey(t.TempDir(), "pp_ed25519", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	appendAuthorized(t, h, ppPub)

	// A real ssh-agent holding the client key.
	agentSock := startAgent(t, h.ClientKey)

	tests := []struct {
		name       string
		mutate     func(o *Options)
		wantMethod string
		wantErr    error
		tries      int
	}{
		{name: "key file", wantMethod: "key " + h.ClientKey},
		{name: "agent", mutate: func(o *Options) { o.Target.Identity = ""; o.AgentSocket = agentSock }, wantMethod: "agent key"},
		{name: "agent holds the -i key: no passphrase asked", mutate: func(o *Options) { o.AgentSocket = agentSock }, wantMethod: "key " + h.ClientKey},
		{name: "passphrase key, second try right", mutate: func(o *Options) { o.Target.Identity = ppKey }, wantMethod: "key " + ppKey, tries: 2},
		{name: "passphrase key without a callback", mutate: func(o *Options) { o.Target.Identity = ppKey; o.Passphrase = nil }, wantErr: ErrKeyPassphrase},
		{name: "passphrase always wrong", mutate: func(o *Options) {
			o.Target.Identity = ppKey
			o.Passphrase = func(string, int) ([]byte, error) { return []byte("nope"), nil }
		}, wantErr: ErrKeyPassphrase},
		{name: "no key at all", mutate: func(o *Options) { o.Target.Identity = "" }, wantErr: ErrAuthFailed},
		{name: "missing key file", mutate: func(o *Options) { o.Target.Identity = filepath.Join(t.TempDir(), "nope") }, wantErr: ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts(h, kh)
			asked := 0
			o.Passphrase = func(file string, attempt int) ([]byte, error) {
				asked++
				if attempt == 1 {
					return []byte("wrong"), nil
				}
				return []byte("correct horse"), nil
			}
			if tt.mutate != nil {
				tt.mutate(&o)
			}
			c, err := Dial(context.Background(), o)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if !strings.HasPrefix(c.AuthMethod, tt.wantMethod) {
				t.Errorf("AuthMethod = %q, want prefix %q", c.AuthMethod, tt.wantMethod)
			}
			if tt.tries != 0 && asked != tt.tries {
				t.Errorf("passphrase asked %d times, want %d", asked, tt.tries)
			}
			out, err := c.Output(context.Background(), "echo hello $USER")
			if err != nil || strings.TrimSpace(string(out)) != "hello "+h.User {
				t.Errorf("Output = %q, %v", out, err)
			}
		})
	}
}

func appendAuthorized(t *testing.T, h *testhost.Host, line string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(h.Dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

func startAgent(t *testing.T, keys ...string) string {
	t.Helper()
	agentBin := testutil.Need(t, "ssh-agent")
	addBin := testutil.Need(t, "ssh-add")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(agentBin, "-a", sock, "-D")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, k := range keys {
		add := exec.Command(addBin, k)
		add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ssh-add: %v: %s", err, out)
		}
	}
	return sock
}

func TestHostKeyTrust(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	hostFP := fingerprintOfLine(t, h.HostKeyPub())
	tests := []struct {
		name       string
		accept     bool
		hash       bool
		prompt     *bool
		wantErr    error
		wantSaved  bool
		wantHashed bool
	}{
		{name: "unknown refused without consent", wantErr: ErrHostKeyUnknown},
		{name: "unknown refused by the operator", prompt: ptr(false), wantErr: ErrHostKeyUnknown},
		{name: "unknown accepted by the operator", prompt: ptr(true), wantSaved: true},
		{name: "unknown accepted by flag", accept: true, wantSaved: true},
		{name: "unknown accepted, hashed", accept: true, hash: true, wantSaved: true, wantHashed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
			o := opts(h, kh)
			o.AcceptNewHostKey = tt.accept
			o.HashKnownHosts = tt.hash
			var shown HostKeyInfo
			if tt.prompt != nil {
				o.PromptHostKey = func(_ context.Context, k HostKeyInfo) (bool, error) {
					shown = k
					return *tt.prompt, nil
				}
			}
			c, err := Dial(context.Background(), o)
			if tt.prompt != nil && shown.Fingerprint != hostFP {
				t.Errorf("prompt showed %q, want %q", shown.Fingerprint, hostFP)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), hostFP) || !strings.Contains(err.Error(), "--accept-new-host-key") {
					t.Errorf("error does not show the fingerprint and the fix: %v", err)
				}
				if _, err := os.Stat(kh); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("known_hosts written after a refusal: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if c.HostKeyOutcome != remote.HostKeyAccepted {
				t.Errorf("outcome = %q", c.HostKeyOutcome)
			}
			st, err := os.Stat(kh)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("known_hosts: %v, mode %v", err, st.Mode())
			}
			data, _ := os.ReadFile(kh)
			if got := strings.HasPrefix(string(data), "|1|"); got != tt.wantHashed {
				t.Errorf("hashed = %v, want %v: %q", got, tt.wantHashed, data)
			}
			if !tt.wantHashed && !strings.HasPrefix(string(data), h.KnownHostsLine()) {
				t.Errorf("known_hosts = %q, want %q", data, h.KnownHostsLine())
			}
			// The saved entry is now trusted without consent.
			o2 := opts(h, kh)
			c2, err := Dial(context.Background(), o2)
			if err != nil {
				t.Fatalf("second dial: %v", err)
			}
			c2.Close()
			if c2.HostKeyOutcome != remote.HostKeyKnown {
				t.Errorf("second outcome = %q", c2.HostKeyOutcome)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func fingerprintOfLine(t *testing.T, line string) string {
	t.Helper()
	f := strings.Fields(line)
	fp, err := remote.Fingerprint(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestChangedHostKeyRefused(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	_, otherPub, err := testhost.GenerateKey(t.TempDir(), "other", "")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(otherPub)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := "[127.0.0.1]:" + h.PortString() + " " + f[0] + " " + f[1] + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	o := opts(h, kh)
	o.AcceptNewHostKey = true // must not matter for a changed key
	c, err := Dial(context.Background(), o)
	if c != nil {
		// Nothing may run on a host whose key changed.
		_, _ = c.Output(context.Background(), "touch "+marker)
		c.Close()
	}
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("err = %v, want ErrHostKeyMismatch", err)
	}
	for _, want := range []string{fingerprintOfLine(t, otherPub), fingerprintOfLine(t, h.HostKeyPub()), "ssh-keygen -R", "provider's console", "Only if the VPS was rebuilt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// The fix compares with the console first; removing the old key comes
	// only after, and only for a rebuilt VPS.
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %#v, want an *Error", err)
	}
	if c, r := strings.Index(se.Fix, "provider's console"), strings.Index(se.Fix, "ssh-keygen -R"); c < 0 || r < c {
		t.Errorf("the fix nudges towards ssh-keygen -R before the console: %q", se.Fix)
	}
	if !strings.Contains(se.Summary, fingerprintOfLine(t, otherPub)) || !strings.Contains(se.Summary, fingerprintOfLine(t, h.HostKeyPub())) {
		t.Errorf("the summary does not name both keys: %q", se.Summary)
	}
	if errors.Is(err, ErrHostKeyRevoked) {
		t.Errorf("a changed key matches ErrHostKeyRevoked")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command ran on a host with a changed key")
	}
	data, _ := os.ReadFile(kh)
	if string(data) != line {
		t.Errorf("known_hosts changed: %q", data)
	}
}

// A server with an ed25519 and an RSA host key, of which known_hosts has
// only the RSA one: the dial must ask for RSA (golang/go#29286) and not
// report a mismatch.
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	dir := t.TempDir()
	rsaKey := filepath.Join(dir, "ssh_host_rsa_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsaKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	h := testhost.Start(t, testhost.Options{Extra: "HostKey " + rsaKey + "\n"})
	pub, _ := os.ReadFile(rsaKey + ".pub")
	f := strings.Fields(string(pub))
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("[127.0.0.1]:"+h.PortString()+" "+f[0]+" "+f[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := dial(t, opts(h, kh))
	if c.HostKey.Type != "ssh-rsa" || c.HostKeyOutcome != remote.HostKeyKnown {
		t.Errorf("host key %s outcome %s, want the known ssh-rsa", c.HostKey.Type, c.HostKeyOutcome)
	}
}

func TestDialFaults(t *testing.T) {
	h := testhost.Start(t, testhost.Options{IPv6: ipv6Loopback()})
	pwOnly := testhost.Start(t, testhost.Options{PasswordOnly: true})
	never := testhost.ListenerThatNeverSpeaks(t)
	drop := testhost.ListenerThatDropsHandshake(t)
	free, _ := testhost.FreePort()
	hole := testhost.NewProxy(t, h.Addr(), 0)
	hole.BlackHole(true)

	tests := []struct {
		name     string
		mutate   func(o *Options)
		wantErr  error
		wantText string
		within   time.Duration
	}{
		{name: "connection refused", mutate: func(o *Options) { o.Target.Port = free }, wantErr: ErrConnRefused, wantText: "--port"},
		{name: "unresolvable name", mutate: func(o *Options) { o.Target.Host = "no-such-host.invalid" }, wantErr: ErrUnresolvable, wantText: "IP address"},
		{name: "never speaks", mutate: func(o *Options) { setAddr(o, never); o.Timeout = time.Second }, wantErr: ErrTimeout, wantText: "after 1", within: 3 * time.Second},
		{name: "drops mid-handshake", mutate: func(o *Options) { setAddr(o, drop) }, wantErr: ErrHandshake, wantText: "ssh -v"},
		{name: "password-only server", mutate: func(o *Options) {
			o.Target.Port = pwOnly.Port
			o.KnownHosts = knownHostsFile(t, pwOnly)
		}, wantErr: ErrAuthFailed, wantText: "password"},
		// A peer behind a dead route: TCP reaches the proxy, nothing comes back.
		{name: "no route", mutate: func(o *Options) { setAddr(o, hole.Addr()); o.Timeout = time.Second }, wantErr: ErrTimeout, wantText: "after 1", within: 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts(h, knownHostsFile(t, h))
			tt.mutate(&o)
			start := time.Now()
			c, err := Dial(context.Background(), o)
			took := time.Since(start)
			if c != nil {
				c.Close()
			}
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			var e *Error
			if !errors.As(err, &e) || e.Fix == "" {
				t.Errorf("error without a fix: %v", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrTimeout) && !strings.Contains(err.Error(), "after") {
				t.Errorf("timeout does not say how long it waited: %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error lacks %q: %v", tt.wantText, err)
			}
			if tt.within > 0 && took > tt.within {
				t.Errorf("took %s, want under %s", took, tt.within)
			}
		})
	}

	t.Run("IPv6 literal", func(t *testing.T) {
		if !ipv6Loopback() {
			t.Skip("this machine has no IPv6 loopback (::1)")
		}
		kh := filepath.Join(t.TempDir(), "known_hosts")
		o := opts(h, kh)
		o.Target.Host = "[::1]"
		o.AcceptNewHostKey = true
		c := dial(t, o)
		if c.Resolved.HostName != "::1" {
			t.Errorf("HostName = %q", c.Resolved.HostName)
		}
		data, _ := os.ReadFile(kh)
		if !strings.HasPrefix(string(data), "[::1]:"+h.PortString()+" ") {
			t.Errorf("known_hosts = %q", data)
		}
	})
}

func setAddr(o *Options, addr string) {
	host, port, _ := strings.Cut(addr, ":")
	o.Target.Host = host
	o.Target.Port = atoi(port)
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

func ipv6Loopback() bool {
	c, err := net6Listen()
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestCancel(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	never := testhost.ListenerThatNeverSpeaks(t)
	t.Run("dial", func(t *testing.T) {
		o := opts(h, knownHostsFile(t, h))
		setAddr(&o, never)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := Dial(ctx, o)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("cancel took %s", d)
		}
	})
	t.Run("running command", func(t *testing.T) {
		c := dial(t, opts(h, knownHostsFile(t, h)))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		err := c.Run(ctx, "sleep 30", nil, nil, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("cancel took %s", d)
		}
		// The connection stays usable.
		if out, err := c.Output(context.Background(), "echo ok"); err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Errorf("after cancel: %q %v", out, err)
		}
	})
}

func TestKeepaliveNoticesBlackHole(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	p := testhost.NewProxy(t, h.Addr(), 0)
	o := opts(h, filepath.Join(t.TempDir(), "known_hosts"))
	o.AcceptNewHostKey = true
	setAddr(&o, p.Addr())
	o.KeepaliveInterval = 100 * time.Millisecond
	o.KeepaliveMax = 3
	c := dial(t, o)
	if _, err := c.Output(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
	p.BlackHole(true)
	start := time.Now()
	err := c.Run(context.Background(), "true", nil, nil, nil)
	if !errors.Is(err, ErrConnectionLost) || !c.Lost() {
		t.Fatalf("err = %v (lost %v), want ErrConnectionLost", err, c.Lost())
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("noticed after %s", d)
	}
}

// TestDialSSHOptions dials the real sshd with the port, user and host key
// alias given only as --ssh-option values, as nixos-anywhere's ssh gets
// them, and checks a proxy is refused before anything is dialled.
func TestDialSSHOptions(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	f := strings.Fields(h.HostKeyPub())
	tests := []struct {
		name       string
		options    []string
		knownHosts string // the line in the known_hosts file
		wantAddr   string // the known_hosts address the dial used
		wantErr    error
	}{
		{name: "port and user", options: []string{"Port=" + h.PortString(), "User=" + h.User},
			knownHosts: h.KnownHostsLine(), wantAddr: "[" + h.IP + "]:" + h.PortString()},
		{name: "host key alias", options: []string{"Port=" + h.PortString(), "HostKeyAlias=vps-new"},
			knownHosts: "vps-new " + f[0] + " " + f[1], wantAddr: "vps-new"},
		{name: "host key alias without an entry", options: []string{"Port=" + h.PortString(), "HostKeyAlias=vps-other"},
			knownHosts: h.KnownHostsLine(), wantErr: ErrHostKeyUnknown},
		{name: "proxy jump", options: []string{"Port=" + h.PortString(), "ProxyJump=bastion"},
			knownHosts: h.KnownHostsLine(), wantErr: ErrUnsupportedOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tt.knownHosts+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			o := opts(h, "")
			o.Target.Port, o.Target.User = 0, ""
			o.Target.Options = append([]string{"UserKnownHostsFile=" + kh}, tt.options...)
			if tt.wantErr != nil {
				_, err := Dial(context.Background(), o)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			c := dial(t, o)
			if c.HostKey.Address != tt.wantAddr || c.KnownHostsFile != kh || c.Resolved.User != h.User {
				t.Errorf("address %q, known_hosts %q, user %q; want %q, %q, %q",
					c.HostKey.Address, c.KnownHostsFile, c.Resolved.User, tt.wantAddr, kh, h.User)
			}
		})
	}
}

// TestHostKeyLookupAddress checks the known_hosts lookup of a host on
// port 22 (written without a port) and of a HostKeyAlias: the knownhosts
// callback refuses an address without a port.
func TestHostKeyLookupAddress(t *testing.T) {
	_, pub, err := testhost.GenerateKey(t.TempDir(), "host_ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(pub)
	tests := []struct {
		name string
		r    Resolved
		line string
	}{
		{"port 22", Resolved{HostName: "203.0.113.7", Port: 22}, "203.0.113.7 " + f[0] + " " + f[1]},
		{"other port", Resolved{HostName: "203.0.113.7", Port: 2222}, "[203.0.113.7]:2222 " + f[0] + " " + f[1]},
		{"alias", Resolved{HostName: "203.0.113.7", Port: 2222, HostKeyAlias: "vps"}, "vps " + f[0] + " " + f[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(tt.line+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := newHostKeyCheck(tt.r, Options{KnownHosts: kh}, nil, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			remoteAddr := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: tt.r.Port}
			if err := h.check(remoteAddr, key); err != nil || h.outcome != remote.HostKeyKnown {
				t.Errorf("check: %v (outcome %q)", err, h.outcome)
			}
			if algs := h.algorithms(remoteAddr); len(algs) != 1 || algs[0] != key.Type() {
				t.Errorf("algorithms = %v, want [%s]", algs, key.Type())
			}
		})
	}
}
