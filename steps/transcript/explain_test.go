package transcript

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestExplainInput(t *testing.T) {
	long := strings.Repeat("x", 3*MaxLineBytes) // a runaway progress line
	tests := []struct {
		name    string
		in      io.Reader
		err     error
		outcome string
		lines   int
	}{
		{"empty", strings.NewReader(""), ErrEmpty, "", 0},
		{"NUL bytes", bytes.NewReader([]byte("### Done! ###\n\x00\x01\x02binary")), ErrNotText, "", 0},
		{"not UTF-8", bytes.NewReader(bytes.Repeat([]byte{0x1f, 0x8b, 0xff, 0xfe, 0xc3}, 100)), ErrNotText, "", 0},
		{"one stray byte is still text", strings.NewReader("caf\xe9 au lait\n### Done! ###\n"), nil, OutcomeSuccess, 2},
		{"no final newline", strings.NewReader("### Rebooting ###\n### Done! ###"), nil, OutcomeSuccess, 2},
		{"CRLF", strings.NewReader("### Rebooting ###\r\n### Done! ###\r\n"), nil, OutcomeSuccess, 2},
		{"overlong line is cut, not fatal", strings.NewReader("### Rebooting ###\n" + long + "\n### Done! ###\n"), nil, OutcomeSuccess, 3},
		{"overlong last line", strings.NewReader("### Rebooting ###\n" + long), nil, OutcomeIncomplete, 2},
		{"only blank lines", strings.NewReader("\n\n\n"), nil, OutcomeIncomplete, 3},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("### Installing NixOS ###\ninstallation finished!\n### Done! ###\n")), nil, OutcomeSuccess, 3},
		{"read error", iotest.TimeoutReader(strings.NewReader(strings.Repeat("line\n", 20000))), iotest.ErrTimeout, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Explain(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if r.Outcome != tt.outcome || r.Lines != tt.lines {
				t.Errorf("outcome %q over %d lines, want %q over %d", r.Outcome, r.Lines, tt.outcome, tt.lines)
			}
		})
	}
}

// endless yields n bytes of transcript lines without holding them.
type endless struct {
	n    int64
	line []byte
	pos  int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && e.n > 0 {
		c := copy(p[k:], e.line[e.pos:])
		if int64(c) > e.n {
			c = int(e.n)
		}
		k += c
		e.n -= int64(c)
		e.pos = (e.pos + c) % len(e.line)
	}
	return k, nil
}

// TestExplainHundredMegabytes: a 100 MB transcript streams through in flat
// memory: what Explain allocates does not grow with the input.
func TestExplainHundredMegabytes(t *testing.T) {
	line := []byte("copying path '/nix/store/n5gg6g0bninn45dq46ksw68ij6m407lj-alsa-firmware-1.2.4-xz' to 'ssh://root@203.0.113.10'...\n")
	alloc := func(size int64) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r, err := Explain(&endless{n: size, line: line})
		runtime.ReadMemStats(&after)
		if err != nil || r.Lines != int(size)/len(line)+1 && r.Lines != int(size)/len(line) {
			t.Fatalf("%d bytes: %v, %d lines", size, err, r.Lines)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	small := alloc(1 << 20)
	big := alloc(100 << 20)
	if big > small+(256<<10) {
		t.Errorf("allocations grow with the input: %d bytes for 1 MB, %d bytes for 100 MB", small, big)
	}
}
