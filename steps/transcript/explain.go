package transcript

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
	"unsafe"
)

// Errors of Explain, matched with errors.Is.
var (
	// ErrEmpty: the input holds no bytes at all.
	ErrEmpty = errors.New("empty: nothing to explain")
	// ErrNotText: the start of the input has NUL bytes or is mostly not
	// UTF-8, so it is not a transcript (a compressed or binary file).
	ErrNotText = errors.New("not a text transcript")
)

// MaxLineBytes is the longest line Explain classifies; the rest of a longer
// line is skipped (a runaway progress bar or a binary blob must not grow
// memory or stop the explanation).
const MaxLineBytes = 64 << 10

// sniffBytes is how much of the start is checked for being text.
const sniffBytes = 8 << 10

// Explain classifies a saved transcript read from r, line by line in bounded
// memory. The exit code of the run is not known, so a transcript that just
// stops is "incomplete".
func Explain(r io.Reader) (Report, error) {
	br := bufio.NewReaderSize(r, MaxLineBytes)
	head, err := br.Peek(sniffBytes)
	if len(head) == 0 {
		if err != nil && err != io.EOF {
			return Report{}, fmt.Errorf("read transcript: %w", err)
		}
		return Report{}, ErrEmpty
	}
	if !looksLikeText(head, err != nil) {
		return Report{}, ErrNotText
	}
	c := New()
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			c.Line(lineString(line))
		}
		for err == bufio.ErrBufferFull {
			// An overlong line: its first MaxLineBytes were classified;
			// skip to its end.
			_, err = br.ReadSlice('\n')
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return Report{}, fmt.Errorf("read transcript after line %d: %w", c.line, err)
		}
	}
	_, rep := c.Finish(-1)
	return rep, nil
}

// lineString views a line of the reader's buffer as a string without
// copying it. The classifier does not keep the string past the call (it
// clones what it keeps), and the buffer is not written while it runs.
func lineString(b []byte) string {
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
	}
	if n > 0 && b[n-1] == '\r' {
		n--
	}
	if n == 0 {
		return ""
	}
	return unsafe.String(&b[0], n)
}

// looksLikeText reports whether the start of a file is text: no NUL byte
// and (nearly) all valid UTF-8. A few stray bytes are allowed, since pasted
// transcripts sometimes carry one; a binary or compressed file has many.
// whole says head is the entire input (so a rune cut at its end is bad).
func looksLikeText(head []byte, whole bool) bool {
	bad := 0
	for i := 0; i < len(head); {
		b := head[i]
		if b == 0 {
			return false
		}
		if b < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(head[i:])
		if r == utf8.RuneError && size <= 1 {
			if !whole && !utf8.FullRune(head[i:]) {
				break // cut at the end of the sniffed chunk
			}
			bad++
		}
		i += max(size, 1)
	}
	return bad <= 1 || bad*50 <= len(head)
}
