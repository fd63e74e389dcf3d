package textout

import (
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// CommandLines lays a shell command out in lines of at most w columns so
// that it copies whole: it breaks only at the spaces between words (never
// inside a word or a quoted string), ends every line but the last with
// " \" and indents the lines that continue it. A flag stays on the line
// of its value when both fit. A word longer than the line gets a line of
// its own, uncut, and no flag before it.
func CommandLines(cmd string, w int) []string { return CommandLinesIndent(cmd, w, 4) }

// CommandLinesIndent is CommandLines with the continuing lines indented
// by cont columns (narrow windows want less than the usual 4).
func CommandLinesIndent(cmd string, w, cont int) []string {
	words := shellWords(cmd)
	if len(words) == 0 {
		return nil
	}
	// Group a flag with the value that follows it.
	var groups []string
	for i := 0; i < len(words); i++ {
		g := words[i]
		// A flag stays with its value when the two fit on a line;
		// otherwise the break between them keeps the value whole, and a
		// value wider than a line starts a line of its own.
		if strings.HasPrefix(g, "-") && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") &&
			len(g)+1+len(words[i+1])+cont+2 <= w {
			g += " " + words[i+1]
			i++
		}
		groups = append(groups, g)
	}
	contPad := strings.Repeat(" ", cont)
	var lines []string
	cur := ""
	for _, g := range groups {
		prefix := ""
		if len(lines) > 0 {
			prefix = contPad
		}
		switch {
		case cur == "":
			cur = g
		case len(prefix)+len(cur)+1+len(g)+2 <= w:
			cur += " " + g
		default:
			lines = append(lines, prefix+cur+" \\")
			cur = g
		}
	}
	prefix := ""
	if len(lines) > 0 {
		prefix = contPad
	}
	return append(lines, prefix+cur)
}

// WrapCommand is CommandLines joined by newlines.
func WrapCommand(cmd string, w int) string { return strings.Join(CommandLines(cmd, w), "\n") }

// shellWords splits a command at the spaces outside quotes, keeping each
// word's text as written (quotes and escapes included).
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			cur.WriteByte(c)
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		case c == '\'' || c == '"':
			quote, in = c, true
			cur.WriteByte(c)
		case c == '\\' && i+1 < len(s):
			in = true
			cur.WriteByte(c)
			i++
			cur.WriteByte(s[i])
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			in = true
			cur.WriteByte(c)
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// WrapWords lays text out in lines of at most w columns, broken only at
// spaces: a word wider than the line (a path, a URL) stands whole on a
// line of its own, so it copies as one word. Text with colour codes is
// measured by what it shows.
func WrapWords(text string, w int) string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		cur := ""
		for _, word := range strings.Fields(para) {
			switch {
			case cur == "":
				cur = word
			case ansi.StringWidth(cur)+1+ansi.StringWidth(word) <= w:
				cur += " " + word
			default:
				lines = append(lines, cur)
				cur = word
			}
		}
		lines = append(lines, cur)
	}
	return strings.Join(lines, "\n")
}
