package linear

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// TestQuestionAfterInterrupt: Ctrl-C while bigbang asks about a host key
// ends the question at once, and a y typed afterwards trusts nothing.
func TestQuestionAfterInterrupt(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	f := &Front{Err: &bytes.Buffer{}, In: bufio.NewReader(r)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var ok bool
	go func() {
		var err error
		ok, err = f.TrustHostKey(ctx, steps.Target{Host: "203.0.113.7"}, engine.HostKey{Type: "ssh-ed25519", Fingerprint: "SHA256:x"})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || ok {
			t.Fatalf("after Ctrl-C: trust %v, err %v; want no trust and the interruption", ok, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the question ignored Ctrl-C")
	}
	// A question asked once Ctrl-C was pressed, with a y already typed,
	// says no and leaves the y unread.
	waiting := bufio.NewReader(strings.NewReader("y\n"))
	late := &Front{Err: io.Discard, In: waiting}
	ok, err := late.TrustHostKey(ctx, steps.Target{Host: "203.0.113.7"}, engine.HostKey{Type: "ssh-ed25519", Fingerprint: "SHA256:x"})
	if ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("asked after Ctrl-C with a y waiting: trust %v, err %v; want no trust and the interruption", ok, err)
	}
	if rest, _ := waiting.ReadString('\n'); rest != "y\n" {
		t.Errorf("the question asked after Ctrl-C read the answer typed for it: %q is left", rest)
	}
}

// TestReport: JSON is one line, text goes through the plain printer.
func TestReport(t *testing.T) {
	var b bytes.Buffer
	if err := Report(&b, true, map[string]int{"blocking": 1}, nil); err != nil || b.String() != "{\"blocking\":1}\n" {
		t.Errorf("JSON report %q, %v", b.String(), err)
	}
	b.Reset()
	_ = Report(&b, false, nil, func(w io.Writer) { io.WriteString(w, "text") })
	if b.String() != "text" {
		t.Errorf("text report %q", b.String())
	}
}
