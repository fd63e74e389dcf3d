package sshexec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testhost"
)

// A target whose every command hangs (sshd's ForceCommand sleep): each
// remote call ends within its bound with an error that names the call, the
// host and the bound, and says what to do.
func TestRemoteCallsThatNeverReturn(t *testing.T) {
	h := testhost.Start(t, testhost.Options{ForceCommand: "sleep 300"})
	o := opts(h, knownHostsFile(t, h))
	o.Limits = Limits{Facts: 1500 * time.Millisecond, Probe: time.Second, Idle: 800 * time.Millisecond}
	c := dial(t, o)
	login := "ssh -p " + h.PortString() + " " + h.User + "@127.0.0.1"

	tests := []struct {
		name  string
		call  func(ctx context.Context) error
		wants []string
		bound time.Duration
	}{
		{"facts", func(ctx context.Context) error { _, err := c.Facts(ctx); return err },
			[]string{"gathering facts: ", "the facts script on " + h.User + "@127.0.0.1:" + h.PortString() + " did not answer within 1.5s"}, 1500 * time.Millisecond},
		{"sudo probe", func(ctx context.Context) error {
			_, err := c.SetupPasswordlessSudo(ctx, SudoSetup{Password: func(int) ([]byte, error) { return []byte("x"), nil }})
			return err
		}, []string{"sudo setup: ", "the sudo probe on", "did not answer within 1s"}, time.Second},
		{"run: idle", func(ctx context.Context) error { return c.Run(ctx, "df -P ~", nil, io.Discard, nil) },
			[]string{`the command "df" on`, "went 800ms without output or reading its input"}, 800 * time.Millisecond},
		{"exec: named, with a deadline", func(ctx context.Context) error {
			return c.Exec(ctx, Call{Name: "the host key script", Cmd: "cat /etc/ssh/ssh_host_ed25519_key.pub", Timeout: 600 * time.Millisecond, Stdout: io.Discard})
		}, []string{"the host key script on", "did not answer within 600ms"}, 600 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call(context.Background())
			took := time.Since(start)
			if !errors.Is(err, ErrRemoteTimeout) {
				t.Fatalf("err = %v, want ErrRemoteTimeout", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Fix == "" {
				t.Fatalf("err = %#v, want an *Error with a fix", err)
			}
			for _, w := range append(tt.wants, "a command there hangs", "log in ("+login+")", "dead NFS home", "then run again") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if took < tt.bound || took > tt.bound+3*time.Second {
				t.Errorf("took %s, bound %s", took, tt.bound)
			}
		})
	}

	// An interrupt is still an interrupt, not a hang.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, err := c.Facts(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrRemoteTimeout) {
		t.Errorf("cancelled facts: %v, want context.Canceled only", err)
	}
}

// The deadlines end a hung command and nothing else: the connection stays
// usable, and a command that streams (output or input) slower than the
// idle bound but never stops outlives it.
func TestRemoteDeadlinesSpareProgress(t *testing.T) {
	h := testhost.Start(t, testhost.Options{})
	o := opts(h, knownHostsFile(t, h))
	o.Limits = Limits{Idle: time.Second}
	c := dial(t, o)
	ctx := context.Background()

	if err := c.Exec(ctx, Call{Name: "the sleeper", Cmd: "sleep 300", Timeout: 500 * time.Millisecond}); !errors.Is(err, ErrRemoteTimeout) {
		t.Fatalf("sleep 300 with a 500ms deadline: %v", err)
	}
	if out, err := c.Output(ctx, "echo ok"); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("after a deadline: %q %v", out, err)
	}

	t.Run("output keeps it alive", func(t *testing.T) {
		var out bytes.Buffer
		start := time.Now()
		err := c.Run(ctx, "for i in 1 2 3 4 5 6 7 8; do echo $i; sleep 0.3; done", nil, &out, nil)
		if err != nil || strings.Count(out.String(), "\n") != 8 {
			t.Fatalf("err %v, out %q", err, out.String())
		}
		if time.Since(start) < 2*time.Second {
			t.Fatalf("ran %s: the test proves nothing about a 1s idle bound", time.Since(start))
		}
	})
	t.Run("standard error keeps it alive", func(t *testing.T) {
		err := c.Run(ctx, "for i in 1 2 3 4 5 6 7 8; do echo $i >&2; sleep 0.3; done", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("input keeps it alive", func(t *testing.T) {
		var out bytes.Buffer
		err := c.Run(ctx, "wc -c", &slowReader{n: 8, every: 300 * time.Millisecond}, &out, nil)
		if err != nil || strings.TrimSpace(out.String()) != "8" {
			t.Fatalf("err %v, out %q", err, out.String())
		}
	})
	t.Run("a silent command is ended", func(t *testing.T) {
		start := time.Now()
		err := c.Run(ctx, "echo start; sleep 300", nil, io.Discard, nil)
		if !errors.Is(err, ErrRemoteTimeout) || !strings.Contains(err.Error(), "went 1s without output") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("took %s", d)
		}
	})
	t.Run("Idle < 0 disables the bound", func(t *testing.T) {
		err := c.Exec(ctx, Call{Cmd: "sleep 1.5", Idle: -1})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// slowReader yields n bytes, one every interval, then EOF.
type slowReader struct {
	n     int
	every time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	r.n--
	p[0] = 'x'
	return 1, nil
}
