package linear

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/creack/pty"
)

// TestReadSecretInterrupt: on a real terminal, the passphrase read ends
// when the context does (Ctrl-C), without waiting for Enter, and gives the
// terminal its echo back; a line typed later is not returned.
func TestReadSecretInterrupt(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	fd := tty.Fd()
	before, err := term.GetState(fd)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type answer struct {
		b   []byte
		err error
	}
	done := make(chan answer, 1)
	go func() {
		b, err := ReadSecret(ctx, fd)
		done <- answer{b, err}
	}()
	// Wait until the read has turned echo off.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := term.GetState(fd)
		if err == nil && *st != *before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read never turned echo off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := ptmx.Write([]byte("half-typed")); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case a := <-done:
		if !errors.Is(a.err, context.Canceled) || a.b != nil {
			t.Fatalf("after Ctrl-C: %q, %v; want nothing and the interruption", a.b, a.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the passphrase read ignored Ctrl-C until Enter")
	}
	after, err := term.GetState(fd)
	if err != nil || *after != *before {
		t.Errorf("the terminal was left changed (echo off?): %+v, want %+v (%v)", after, before, err)
	}
}

// TestReadSecret: a line typed on the terminal is the answer.
func TestReadSecret(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = ptmx.Write([]byte("s3cret\r"))
	}()
	b, err := ReadSecret(context.Background(), tty.Fd())
	if err != nil || string(b) != "s3cret" {
		t.Fatalf("read %q, %v", b, err)
	}
}
