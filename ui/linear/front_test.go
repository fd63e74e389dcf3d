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

// TestConfirmRestore: a restore into another directory than the archive's
// goes on only when the host is typed (or --yes-wipe named it), and says
// what it would overwrite.
func TestConfirmRestore(t *testing.T) {
	r := engine.RestoreInto{Target: steps.Target{Host: "203.0.113.7"}, Archive: "/b/a.tar.zst.age", From: "/persistent", Into: "/srv"}
	for _, tt := range []struct {
		name   string
		f      *Front
		ok     bool
		errHas string
	}{
		{"the host typed", &Front{In: bufio.NewReader(strings.NewReader("203.0.113.7\n"))}, true, ""},
		{"yes typed", &Front{In: bufio.NewReader(strings.NewReader("yes\n"))}, false, `you typed "yes"`},
		{"no answer", &Front{In: bufio.NewReader(strings.NewReader(""))}, false, "no answer"},
		{"no terminal", &Front{}, false, "--yes-wipe 203.0.113.7"},
		{"--yes-wipe", &Front{Confirmed: true}, true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var errw bytes.Buffer
			tt.f.Err = &errw
			ok, err := tt.f.ConfirmRestore(context.Background(), r)
			if ok != tt.ok || (tt.errHas == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.errHas)) {
				t.Fatalf("ok %v, err %v; want %v, %q", ok, err, tt.ok, tt.errHas)
			}
			if tt.f.In != nil && !strings.Contains(errw.String(), "into 203.0.113.7:/srv as root") {
				t.Errorf("the question does not say what it overwrites:\n%s", errw.String())
			}
		})
	}
}

// TestStopUnits: on a terminal the offer of a backup that saw writes reads
// the units to stop; without one it names none.
func TestStopUnits(t *testing.T) {
	var errb bytes.Buffer
	q := engine.UnitsQuestion{Host: "203.0.113.7", Source: "/persistent", Why: errors.New("files changed while they were read")}
	f := &Front{Err: &errb, In: bufio.NewReader(strings.NewReader("postgresql.service  app.service\n"))}
	units, err := f.StopUnits(context.Background(), q)
	if err != nil || strings.Join(units, ",") != "postgresql.service,app.service" {
		t.Fatalf("units %q, %v", units, err)
	}
	for _, want := range []string{"203.0.113.7:/persistent is not consistent", "files changed while they were read", "start again if the reinstall stops before the wipe"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("the question lacks %q:\n%s", want, errb.String())
		}
	}
	if units, err := (&Front{Err: &errb}).StopUnits(context.Background(), q); units != nil || err != nil {
		t.Errorf("without a terminal: %q, %v", units, err)
	}
	if units, _ := (&Front{Err: &errb, In: bufio.NewReader(strings.NewReader("\n"))}).StopUnits(context.Background(), q); len(units) != 0 {
		t.Errorf("an empty answer named %q", units)
	}
}
