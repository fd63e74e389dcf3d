package runner

import "bytes"

// DefaultMaxLine caps the text of one line event; the transcript file keeps
// the whole line.
const DefaultMaxLine = 16 << 10

// splitter turns the byte stream of a terminal into lines. A line ends at
// '\n' (the terminal sends "\r\n"). A '\r' that is not part of a line end
// starts the line over, as it does on a screen: progress bars redraw their
// line that way, and only the last state of the line is kept.
type splitter struct {
	buf []byte
	cr  bool // the last byte seen was a '\r' that may start a "\r\n"
	cut bool // the current line was longer than max
	// redrawn: a '\r' started the current line over: it is a line that a
	// program keeps redrawing (nix's status line), not yet ended.
	redrawn bool
	// prev is the state before the current one of a redrawn line: a
	// program that clears its line before it prints another ("\r\x1b[K")
	// leaves its last real state there.
	prev []byte
	max  int
	emit func(line []byte)
	// ended, when set, gets the states a redrawn line showed before its
	// last one, when it ends: separated by '\r', the latest last.
	ended  func(states []byte)
	states []byte
}

// write feeds a chunk of output. emit is called for every complete line; the
// slice it gets is valid only during the call.
func (s *splitter) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.part(p)
			return
		}
		seg := p[:i]
		p = p[i+1:]
		wasCR := s.cr && len(seg) > 0
		s.cr = false
		seg = trimCR(seg)
		j := bytes.LastIndexByte(seg, '\r')
		if (wasCR || j >= 0) && s.ended != nil {
			// The line was redrawn before it ended: its states before the
			// last one, separated by '\r', the latest last.
			st := append(append(s.states[:0], s.prev...), '\r')
			st = append(st, s.buf...)
			if wasCR {
				st = append(st, '\r')
			}
			if j >= 0 {
				st = append(st, seg[:j]...)
			}
			s.states = st
			s.ended(st)
		}
		if wasCR {
			s.reset()
		}
		if j >= 0 {
			s.reset()
			seg = seg[j+1:]
		}
		s.redrawn = false
		s.prev = s.prev[:0]
		if len(s.buf) == 0 && !s.cut && len(seg) <= s.max {
			// The common case: the whole line is in this chunk.
			s.emit(seg)
			continue
		}
		s.add(seg)
		s.flushLine()
	}
}

// part takes the start of a line whose end has not arrived yet.
func (s *splitter) part(p []byte) {
	if s.cr {
		s.keepPrev(s.buf, nil)
		s.reset()
		s.redrawn = true
	}
	s.cr = false
	if n := len(p); p[n-1] == '\r' {
		s.cr = true
		p = trimCR(p)
	}
	if j := bytes.LastIndexByte(p, '\r'); j >= 0 {
		if k := bytes.LastIndexByte(p[:j], '\r'); k >= 0 {
			s.keepPrev(nil, p[k+1:j])
		} else {
			s.keepPrev(s.buf, p[:j])
		}
		s.reset()
		s.redrawn = true
		p = p[j+1:]
	}
	s.add(p)
}

// keepPrev remembers a+b as the state before the current one, when it is
// not empty.
func (s *splitter) keepPrev(a, b []byte) {
	if len(a)+len(b) == 0 {
		return
	}
	s.prev = append(append(s.prev[:0], a...), b...)
	if len(s.prev) > s.max {
		s.prev = s.prev[:s.max]
	}
}

// redraw returns the current state of a line that is being redrawn and has
// not ended, and the state before it, or nils. They are valid until the
// next write. A line that just got a '\r' which may be the start of its
// "\r\n" is not returned: it is about to end as a line.
func (s *splitter) redraw() (cur, prev []byte) {
	if !s.redrawn || s.cr {
		return nil, nil
	}
	return s.buf, s.prev
}

func (s *splitter) add(p []byte) {
	if room := s.max - len(s.buf); len(p) > room {
		p = p[:max(room, 0)]
		s.cut = true
	}
	s.buf = append(s.buf, p...)
}

func (s *splitter) reset() {
	s.buf = s.buf[:0]
	s.cut = false
}

func (s *splitter) flushLine() {
	s.redrawn = false
	s.prev = s.prev[:0]
	if s.cut {
		s.buf = append(s.buf, " …"...)
	}
	s.emit(s.buf)
	s.reset()
	if cap(s.buf) > 4*s.max {
		s.buf = nil
	}
}

// close emits a last line that has no line end.
func (s *splitter) close() {
	if len(s.buf) > 0 || s.cut {
		s.flushLine()
	}
	s.cr = false
}

func trimCR(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// cleanText returns the line without terminal control sequences (colours,
// cursor movement, OSC titles) and without other control characters but
// tab: what the classifier matches and what a plain reader sees. scratch is
// reused to avoid an allocation; the result aliases line or scratch.
func cleanText(line, scratch []byte) []byte {
	clean := true
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return line
	}
	out := scratch[:0]
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != 0x1b {
			if c >= 0x20 && c != 0x7f || c == '\t' {
				out = append(out, c)
			}
			continue
		}
		i++
		if i >= len(line) {
			break
		}
		switch line[i] {
		case '[': // CSI: parameters and intermediates, then one final byte
			for i++; i < len(line) && (line[i] < 0x40 || line[i] > 0x7e); i++ {
			}
		case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: up to BEL or ST
			for i++; i < len(line); i++ {
				if line[i] == 0x07 {
					break
				}
				if line[i] == 0x1b && i+1 < len(line) && line[i+1] == '\\' {
					i++
					break
				}
			}
		default: // ESC, intermediates, final byte
			for i < len(line) && line[i] >= 0x20 && line[i] <= 0x2f {
				i++
			}
		}
	}
	return out
}
