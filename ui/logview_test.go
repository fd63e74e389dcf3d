package ui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// TestLogViewSearch opens the log from the progress screen with l, searches
// it with /, and walks the matches with n and N: the viewport follows, the
// status line counts, and the query is plain text, not a pattern.
func TestLogViewSearch(t *testing.T) {
	var log strings.Builder
	for i := 0; i < 300; i++ {
		switch i {
		case 20:
			log.WriteString("\x1b[31mERROR: disk busy (first)\x1b[0m\r\n")
		case 250:
			log.WriteString("copying... error: disk busy (second)\r\n")
		case 260:
			log.WriteString("a.b literal\r\n")
		default:
			fmt.Fprintf(&log, "line %03d axb\r\n", i)
		}
	}
	path := filepath.Join(t.TempDir(), "install.log")
	if err := os.WriteFile(path, []byte(log.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	m := testModel(t, 80, 24)
	m.screen = screenProgress
	m.progress = newProgressScreen(steps.PhaseOrder, t0)
	m.logPath = path
	_, cmd := m.Update(key("l"))
	if m.logv == nil || cmd == nil {
		t.Fatal("l did not open the log viewer")
	}
	m.Update(cmd())
	view := func() string { return ansi.Strip(m.View().Content) }
	if v := view(); !strings.Contains(v, "line 299") || !strings.Contains(v, "300 lines") {
		t.Fatalf("the viewer does not open at the end of the log:\n%s", v)
	}
	search := func(q string) {
		m.Update(key("/"))
		for _, r := range q {
			m.Update(key(string(r)))
		}
		m.Update(key("enter"))
	}

	search("disk busy")
	steps := []struct {
		key, want, not string
	}{
		{"", "(first)", "(second)"},
		{"n", "(second)", "(first)"},
		{"N", "(first)", "(second)"},
	}
	for _, s := range steps {
		if s.key != "" {
			m.Update(key(s.key))
		}
		v := view()
		if !strings.Contains(v, s.want) || strings.Contains(v, s.not) {
			t.Errorf("after %q the viewer shows:\n%s\nwant %q and not %q", s.key, v, s.want, s.not)
		}
		if !strings.Contains(v, "2 matches for “disk busy”") {
			t.Errorf("status line wrong:\n%s", v)
		}
	}
	if v := view(); strings.Contains(v, "\x1b") || strings.Contains(v, "\r") {
		t.Errorf("the log's escapes reach the screen: %q", v)
	}

	search("a.b")
	if v := view(); !strings.Contains(v, "1 matches for “a.b”") || !strings.Contains(v, "a.b literal") {
		t.Errorf("a.b is not searched as plain text:\n%s", v)
	}
	m.Update(key("esc"))
	if m.logv != nil {
		t.Error("esc did not close the viewer")
	}
}

// TestPreflightFitsSmallWindow keeps the host key question on screen when
// the checks do not all fit: problems first, then a count of the rest.
func TestPreflightFitsSmallWindow(t *testing.T) {
	for _, h := range []int{12, 16, 40} {
		t.Run(fmt.Sprint(h), func(t *testing.T) {
			m := testModel(t, 60, h)
			m.preflight = newPreflightScreen(m.cfg)
			m.screen = screenPreflight
			rep := a1Report()
			for i := 0; i < 12; i++ {
				rep.Checks = append(rep.Checks, steps.Check{ID: fmt.Sprintf("x.%d", i), Status: steps.StatusOK, Summary: fmt.Sprintf("fine %d", i)})
			}
			rep.Checks = append(rep.Checks, steps.Check{ID: "x.fail", Status: steps.StatusFail, Summary: "broken thing", Fix: "mend it"})
			rep.HostKey.Status = engine.HostKeyNew
			m.preflight.done(rep, nil)
			v := ansi.Strip(m.View().Content)
			want := []string{"is this its host key?", "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "y trust this key"}
			if h > 12 {
				want = append(want, "broken thing", "mend it")
			}
			for _, want := range want {
				if !strings.Contains(v, want) {
					t.Errorf("%d lines: the screen lacks %q:\n%s", h, want, v)
				}
			}
			if n := strings.Count(v, "\n") + 1; n != h {
				t.Errorf("%d lines drawn in a %d-line window", n, h)
			}
			// 12 lines leave no room for the list at all; 16 show part of it.
			if more := strings.Contains(v, "more not shown"); more != (h == 16) {
				t.Errorf("%d lines: 'more not shown' %v:\n%s", h, more, v)
			}
		})
	}
}
