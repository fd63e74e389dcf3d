package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func split(max int, chunks ...string) []string {
	var out []string
	s := &splitter{max: max, emit: func(l []byte) { out = append(out, string(l)) }}
	for _, c := range chunks {
		s.write([]byte(c))
	}
	s.close()
	return out
}

func TestSplitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		chunks []string
		want   []string
	}{
		{"terminal line ends", 100, []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"plain line ends", 100, []string{"a\nb\n"}, []string{"a", "b"}},
		{"empty lines kept", 100, []string{"a\r\n\r\nb\r\n"}, []string{"a", "", "b"}},
		{"progress keeps the last state", 100, []string{"10%\r20%\r100%\r\n"}, []string{"100%"}},
		{"CR LF split across chunks", 100, []string{"ab\r", "\ncd\r\n"}, []string{"ab", "cd"}},
		{"CR then text across chunks", 100, []string{"old\r", "new\r\n"}, []string{"new"}},
		{"line split across chunks", 100, []string{"hel", "lo wor", "ld\r\n"}, []string{"hello world"}},
		{"last line without end", 100, []string{"a\r\ntail"}, []string{"a", "tail"}},
		{"long line capped", 5, []string{"abcdefghij\r\nok\r\n"}, []string{"abcde …", "ok"}},
		{"long line capped across chunks", 5, []string{"abc", "defghij", "\r\n"}, []string{"abcde …"}},
		{"progress without line end", 100, []string{"1%\r2%\r", "3%"}, []string{"3%"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := split(tc.max, tc.chunks...)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"tab\tkept", "tab\tkept"},
		{"\x1b[1;34mSSH COMMAND:\x1b[0m ssh -T", "SSH COMMAND: ssh -T"},
		{"\x1b]0;title\x07after", "after"},
		{"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"\x1b[K\x1b[2Kcleared", "cleared"},
		{"\x1b(Bcharset", "charset"},
		{"bell\x07 and back\bspace", "bell and backspace"},
		{"cut \x1b[", "cut "},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := string(cleanText([]byte(tc.in), nil)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDefaultLogPath(t *testing.T) {
	now := time.Date(2026, 6, 6, 16, 36, 52, 0, time.FixedZone("CEST", 2*3600))
	for _, tc := range []struct{ name, xdg, host, want string }{
		{"XDG_STATE_HOME", "/state", "203.0.113.7", "/state/bigbang/logs/203.0.113.7-20260606T143652Z.log"},
		{"fallback", "", "vps", "HOME/.local/state/bigbang/logs/vps-20260606T143652Z.log"},
		{"relative XDG ignored", "rel", "vps", "HOME/.local/state/bigbang/logs/vps-20260606T143652Z.log"},
		{"IPv6", "/state", "[2001:db8::1]", "/state/bigbang/logs/2001_db8__1-20260606T143652Z.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tc.xdg)
			t.Setenv("HOME", "/home/op")
			want := strings.Replace(tc.want, "HOME", "/home/op", 1)
			if got := DefaultLogPath(tc.host, now); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

func TestOpenLog(t *testing.T) {
	dir := t.TempDir()
	t.Run("new file and folders are private", func(t *testing.T) {
		p := filepath.Join(dir, "a", "b", "x.log")
		f, err := OpenLog(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		st, _ := os.Stat(p)
		dst, _ := os.Stat(filepath.Dir(p))
		if st.Mode().Perm() != 0o600 || dst.Mode().Perm() != 0o700 {
			t.Fatalf("modes %04o %04o", st.Mode().Perm(), dst.Mode().Perm())
		}
	})
	t.Run("existing file is appended to and made private", func(t *testing.T) {
		p := filepath.Join(dir, "old.log")
		if err := os.WriteFile(p, []byte("first run\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := OpenLog(p)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("second run\n")
		f.Close()
		data, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		if string(data) != "first run\nsecond run\n" || st.Mode().Perm() != 0o600 {
			t.Fatalf("data %q mode %04o", data, st.Mode().Perm())
		}
	})
}
