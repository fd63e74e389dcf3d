package testhost

import (
	"bufio"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func TestProxy(t *testing.T) {
	p := NewProxy(t, echoServer(t), 30*time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	buf := make([]byte, 4)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("round trip %s, want at least twice the 30 ms delay", d)
	}
	t.Run("black hole", func(t *testing.T) {
		p.BlackHole(true)
		defer p.BlackHole(false)
		_, _ = c.Write([]byte("lost"))
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			t.Errorf("read %q through a black hole", buf[:n])
		}
		_ = c.SetReadDeadline(time.Time{})
	})
	t.Run("cut", func(t *testing.T) {
		p.Cut()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err == nil {
			t.Error("connection still open after Cut")
		}
	})
}

func TestStartAndReboot(t *testing.T) {
	h := Start(t, Options{})
	old := h.HostKeyPub()
	h.Reboot(200*time.Millisecond, "")
	if c, err := net.DialTimeout("tcp", h.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("sshd still listens right after Reboot")
	}
	up, err := h.WaitUp(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if up.IsZero() || h.HostKeyPub() == old {
		t.Errorf("came back at %v with key changed=%v", up, h.HostKeyPub() != old)
	}
}

func TestListenerThatNeverSpeaks(t *testing.T) {
	c, err := net.Dial("tcp", ListenerThatNeverSpeaks(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("it spoke")
	}
}

// sshCmd logs in to h with OpenSSH's ssh and runs command.
func sshCmd(h *Host, command string) *exec.Cmd {
	return exec.Command("ssh", "-T", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", h.ClientKey,
		"-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
		"-p", h.PortString(), h.User+"@"+h.IP, command)
}

func TestSessionEnvironment(t *testing.T) {
	testutil.Need(t, "ssh")
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"own home", "", "home=@HOME@ foo="},
		{"Extra's SetEnv joins the home", "SetEnv FOO=bar\nLogLevel VERBOSE\n", "home=@HOME@ foo=bar"},
		{"Extra's HOME wins", "SetEnv HOME=/tmp FOO=baz\n", "home=/tmp foo=baz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Start(t, Options{Extra: tc.extra})
			out, err := sshCmd(h, `echo "home=$HOME foo=$FOO"`).CombinedOutput()
			want := strings.ReplaceAll(tc.want, "@HOME@", h.Home())
			if err != nil || strings.TrimSpace(string(out)) != want {
				t.Fatalf("got %q (%v), want %q", out, err, want)
			}
		})
	}
}

// TestRebootDropsConnections: a rebooting machine drops every connection,
// also those whose session runs in a process below sshd's own children.
func TestRebootDropsConnections(t *testing.T) {
	testutil.Need(t, "ssh")
	h := Start(t, Options{})
	cmd := sshCmd(h, "echo started; exec sleep 60")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("the session did not start: %v", err)
	}
	h.Reboot(time.Second, "")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the session ended cleanly, as if the machine had not gone down")
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the session outlived the reboot")
	}
}
