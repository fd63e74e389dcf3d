package ui

import (
	"bufio"
	"io"
	"os"
	"regexp"
	"strings"

	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// logTailBytes is how much of the log the viewer reads: the end is what
// matters, and a million lines must not be loaded into memory.
const logTailBytes = 4 << 20

// logView is the full log in a viewport, with search.
type logView struct {
	vp        viewport.Model
	search    textinput.Model
	searching bool
	lines     []string
	matches   [][]int
	query     string
	err       error
	loaded    bool
	sized     bool
	// title, when set, makes the viewer a details view of text the
	// screen had to cut: it opens at the top and names what it shows.
	title string
}

// newTextView is the viewer over text a screen could not show whole
// (the preflight's checks, the result), already wrapped to the window.
func newTextView(title string, lines []string) *logView {
	l := newLogView()
	l.title = title
	l.setLines(lines, nil)
	return l
}

func newLogView() *logView {
	in := textinput.New()
	in.Prompt = "/"
	return &logView{vp: viewport.New(), search: in}
}

// loadLogCmd reads the end of the log file in a command.
func loadLogCmd(path string) tea.Cmd {
	return func() tea.Msg {
		lines, err := readLogTail(path, logTailBytes)
		return logLoadMsg{lines: lines, err: err}
	}
}

func readLogTail(path string, limit int64) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		if _, err := f.Seek(st.Size()-limit, io.SeekStart); err != nil {
			return nil, err
		}
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, lastCR(ansi.Strip(sc.Text())))
	}
	return lines, sc.Err()
}

func (l *logView) setLines(lines []string, err error) {
	l.lines, l.err, l.loaded = lines, err, true
	l.vp.SetContentLines(lines)
	l.home()
}

// home shows the end of a log, and the start of a details view.
func (l *logView) home() {
	if l.title != "" {
		l.vp.GotoTop()
		return
	}
	l.vp.GotoBottom()
}

// update handles a key; it reports true when the viewer closes.
func (l *logView) update(k tea.KeyPressMsg) bool {
	if l.searching {
		switch k.String() {
		case "enter":
			l.searching = false
			l.find(l.search.Value())
		case "esc":
			l.searching = false
		default:
			l.search, _ = l.search.Update(k)
		}
		return false
	}
	switch k.String() {
	case "esc", "q", "l", "d":
		return true
	case "/":
		l.searching = true
		l.search.SetValue("")
		l.search.Focus()
	case "n":
		l.vp.HighlightNext()
	case "N":
		l.vp.HighlightPrevious()
	case "g", "home":
		l.vp.GotoTop()
	case "G", "end":
		l.vp.GotoBottom()
	default:
		l.vp, _ = l.vp.Update(k)
	}
	return false
}

// find highlights every match of q (plain text, case-insensitive).
func (l *logView) find(q string) {
	l.query = q
	l.matches = nil
	if q == "" {
		l.vp.ClearHighlights()
		return
	}
	re := regexp.MustCompile("(?i)" + regexp.QuoteMeta(q))
	l.matches = re.FindAllStringIndex(strings.Join(l.lines, "\n"), -1)
	l.vp.SetHighlights(l.matches)
	l.vp.HighlightNext()
}

func (l *logView) keys() [][2]string {
	if l.searching {
		return [][2]string{{"enter", "find"}, {"esc", "cancel"}}
	}
	return [][2]string{{"/", "search"}, {"n/N", "next/prev"}, {"↑↓ pgup pgdn", "scroll"}, {"esc", "close"}}
}

func (l *logView) view(st styles, w, h int) string {
	l.vp.SetWidth(w)
	l.vp.SetHeight(max(h-1, 1))
	if l.loaded && !l.sized {
		// The log arrives before the viewport knows its height; only now
		// does "the bottom" mean the last screenful.
		l.home()
		l.sized = true
	}
	var status string
	switch {
	case !l.loaded:
		status = st.Dim.Render("reading the log…")
	case l.err != nil:
		status = st.Fail.Render("cannot read the log: " + l.err.Error())
	case l.searching:
		status = l.search.View()
	case l.title != "" && l.query == "":
		status = st.Dim.Render(l.title + " · ↑↓ to scroll · / to search · esc closes")
	case l.query != "":
		status = st.Dim.Render(itoa(len(l.matches)) + " matches for “" + l.query + "” · " + itoa(len(l.lines)) + " lines")
	default:
		status = st.Dim.Render(itoa(len(l.lines)) + " lines · / to search")
	}
	return l.vp.View() + "\n" + status
}
