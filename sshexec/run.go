package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bigbang-nix/bigbang/steps"
)

// RemoteError is a remote command that exited non-zero; it keeps the exit
// status and the end of its standard error.
type RemoteError struct {
	Command string // a short name of the command, not its full text
	Status  int
	Stderr  string
}

// Error names the command, its status and the end of its standard error.
func (e *RemoteError) Error() string {
	msg := fmt.Sprintf("%s exited with status %d", e.Command, e.Status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + lastLines(s, 5)
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrRemoteCommand) true.
func (e *RemoteError) Unwrap() error { return ErrRemoteCommand }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// tailBuffer keeps the last 8 KiB written to it, for error messages.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = t.b[len(t.b)-8<<10:]
	}
	return len(p), nil
}

// gatedWriters forward writes until closed and drop them afterwards.
type gatedWriters struct {
	mu     sync.Mutex
	closed bool
}

type gatedWriter struct {
	g *gatedWriters
	w io.Writer
}

func (g *gatedWriters) wrap(w io.Writer) io.Writer { return gatedWriter{g: g, w: w} }

func (g *gatedWriters) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (w gatedWriter) Write(p []byte) (int, error) {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if w.g.closed {
		return len(p), nil
	}
	return w.w.Write(p)
}

// Run runs cmd (a shell command line: quote every variable part with
// steps.ShellQuote) in a new session. Cancelling ctx sends SIGTERM to the
// command and closes the session. A non-zero exit is a *RemoteError.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	return c.run(ctx, firstWord(cmd), cmd, stdin, stdout, stderr)
}

func firstWord(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return "command"
	}
	return f[0]
}

func (c *Client) run(ctx context.Context, name, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	tail := &tailBuffer{}
	// The session copies output in goroutines of its own that may still be
	// writing when a cancelled Run gives up waiting for them: the gate
	// stops every write into the caller's writers once Run returns.
	gate := &gatedWriters{}
	defer gate.close()
	if stderr == nil {
		sess.Stderr = gate.wrap(tail)
	} else {
		sess.Stderr = gate.wrap(io.MultiWriter(stderr, tail))
	}
	if stdout != nil {
		sess.Stdout = gate.wrap(stdout)
	}
	sess.Stdin = stdin
	if err := sess.Start(cmd); err != nil {
		return c.connErr(name, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// SIGTERM reaches the command where sshd allows signals (not in a
		// root session, which has no privilege separation); closing the
		// channel ends it otherwise. The wait goroutine ends with the
		// session or the connection.
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &RemoteError{Command: name, Status: ee.ExitStatus(), Stderr: string(tail.b)}
	}
	return c.connErr(name, err)
}

func (c *Client) connErr(name string, err error) error {
	if c.Lost() {
		return newErr(ErrConnectionLost, err, "check the network and that the target is still up, then run again",
			"%s: the connection to %s stopped answering keepalives", name, c.Resolved)
	}
	return newErr(ErrConnectionLost, err, "run again; if it persists, look at the target's sshd log",
		"%s: the connection to %s broke", name, c.Resolved)
}

// newSession opens a session; a connection that died while the channel was
// being opened is reported as lost, and ctx ends the wait.
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.ssh.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, c.connErr("opening a session", r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		// The goroutine ends when NewSession returns; close what it opens.
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// runProbe runs a POSIX sh script that only reads, passed to sh as one
// quoted argument (so the login shell only has to start sh), and returns
// the key=value lines it prints; a key printed twice keeps its last value.
// name names the script in errors.
func (c *Client) runProbe(ctx context.Context, name, script string) (map[string]string, error) {
	var out bytes.Buffer
	if err := c.run(ctx, name, "sh -c "+steps.ShellQuote(script), nil, &out, nil); err != nil {
		return nil, err
	}
	kv := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv, nil
}

// Output runs cmd and returns its standard output.
func (c *Client) Output(ctx context.Context, cmd string) ([]byte, error) {
	var out bytes.Buffer
	err := c.Run(ctx, cmd, nil, &out, nil)
	return out.Bytes(), err
}
