package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// command and closes the session. A non-zero exit is a *RemoteError. A
// command that goes Limits.Idle without a byte of output and without reading
// its input is ended the same way, with an *Error of ErrRemoteTimeout; use
// Exec to name the command and give it a deadline of its own.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	return c.Exec(ctx, Call{Cmd: cmd, Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// Call is one remote command for Exec.
type Call struct {
	// Name says what the command is, in errors ("the host key script");
	// default: the command's first word.
	Name string
	// Cmd is the shell command line; quote every variable part with
	// steps.ShellQuote.
	Cmd            string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Timeout bounds the whole call; 0: no bound but Idle.
	Timeout time.Duration
	// Idle bounds the time the command may go without writing a byte or
	// reading one of its input. 0: the client's Limits.Idle when Timeout is
	// 0, none otherwise; negative: none.
	Idle time.Duration
}

// Exec runs call in a new session, as Run does, within the call's
// deadlines. A command that misses one is sent SIGTERM, its session is
// closed, and the error (an *Error of ErrRemoteTimeout) names the command,
// the host and the time it was given, and says what to check there.
func (c *Client) Exec(ctx context.Context, call Call) error {
	name := call.Name
	if name == "" {
		name = firstWord(call.Cmd)
	}
	idle := call.Idle
	if idle == 0 && call.Timeout <= 0 {
		idle = c.limits.idle()
	}
	return c.run(ctx, name, call.Cmd, call.Stdin, call.Stdout, call.Stderr, call.Timeout, idle)
}

func firstWord(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return "command"
	}
	return f[0]
}

// hungError is the cause of a call's context when one of its deadlines
// passed.
type hungError struct {
	within time.Duration // the whole call's bound, or
	idle   time.Duration // the bound on silence
}

func (h *hungError) Error() string { return "deadline passed" }

// activity tracks the last byte a call moved and ends the call when it has
// been quiet for too long.
type activity struct {
	idle  time.Duration
	last  atomic.Int64 // UnixNano of the last byte
	timer *time.Timer
}

func newActivity(idle time.Duration, expire func()) *activity {
	a := &activity{idle: idle}
	a.touch()
	check := func() {
		quiet := time.Since(time.Unix(0, a.last.Load()))
		if quiet >= a.idle {
			expire()
			return
		}
		a.timer.Reset(a.idle - quiet)
	}
	// Armed only once a.timer is set, which check reads.
	a.timer = time.AfterFunc(time.Hour, check)
	a.timer.Stop()
	a.timer.Reset(idle)
	return a
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

func (a *activity) stop() { a.timer.Stop() }

type activeWriter struct {
	a *activity
	w io.Writer
}

func (w activeWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		w.a.touch()
	}
	return w.w.Write(p)
}

type activeReader struct {
	a *activity
	r io.Reader
}

func (r activeReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.a.touch()
	}
	return n, err
}

func (c *Client) run(ctx context.Context, name, cmd string, stdin io.Reader, stdout, stderr io.Writer, within, idle time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// rctx ends with ctx or, with a *hungError as its cause, when a
	// deadline of the call passes.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if within > 0 {
		t := time.AfterFunc(within, func() { cancel(&hungError{within: within}) })
		defer t.Stop()
	}
	var act *activity
	if idle > 0 {
		act = newActivity(idle, func() { cancel(&hungError{idle: idle}) })
		defer act.stop()
		if stdout != nil {
			stdout = activeWriter{act, stdout}
		}
		if stderr != nil {
			stderr = activeWriter{act, stderr}
		}
		if stdin != nil {
			stdin = activeReader{act, stdin}
		}
	}
	hung := func() error {
		var h *hungError
		if ctx.Err() == nil && errors.As(context.Cause(rctx), &h) {
			return c.hungErr(name, h)
		}
		return nil
	}
	sess, err := c.newSession(rctx)
	if err != nil {
		if herr := hung(); herr != nil {
			return herr
		}
		return err
	}
	defer sess.Close()
	tail := &tailBuffer{}
	var tailW io.Writer = tail
	if act != nil {
		// Standard error counts as activity also when the caller does not
		// want it.
		tailW = activeWriter{act, tail}
	}
	// The session copies output in goroutines of its own that may still be
	// writing when a cancelled Run gives up waiting for them: the gate
	// stops every write into the caller's writers once Run returns.
	gate := &gatedWriters{}
	defer gate.close()
	if stderr == nil {
		sess.Stderr = gate.wrap(tailW)
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
	case <-rctx.Done():
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
		if herr := hung(); herr != nil {
			return herr
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

// hungErr says which command did not answer, on which host, within what
// time, and what to look at there.
func (c *Client) hungErr(name string, h *hungError) error {
	what := name
	if !strings.HasPrefix(what, "the ") {
		what = "the command " + strconv.Quote(name)
	}
	var summary string
	if h.within > 0 {
		summary = fmt.Sprintf("%s on %s did not answer within %s", what, c.Resolved, h.within)
	} else {
		summary = fmt.Sprintf("%s on %s went %s without output or reading its input", what, c.Resolved, h.idle)
	}
	return newErr(ErrRemoteTimeout, nil,
		"log in ("+sshCommand(c.Resolved)+") and find what hangs there (a df on a dead NFS home, a sudo waiting for a dead LDAP server, a login script that waits for input), then run again",
		"%s: a command there hangs", summary)
}

// sshCommand is the ssh command line that logs in to r by hand.
func sshCommand(r Resolved) string {
	host := r.HostName
	s := "ssh "
	if r.Port != 22 && r.Port != 0 {
		s += "-p " + strconv.Itoa(r.Port) + " "
	}
	if r.User != "" {
		s += r.User + "@"
	}
	return s + host
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
	if err := c.run(ctx, name, "sh -c "+steps.ShellQuote(script), nil, &out, nil, c.limits.probe(), 0); err != nil {
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
