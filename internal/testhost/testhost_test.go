package testhost

import (
	"io"
	"net"
	"testing"
	"time"
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
