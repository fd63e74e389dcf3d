package steps

import (
	"os/exec"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"/dev/sda", "/dev/sda"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$(rm -rf /)", "'$(rm -rf /)'"},
		{"root;rm -rf /", "'root;rm -rf /'"},
		{"`id`", "'`id`'"},
		{"line\nbreak", "'line\nbreak'"},
		{"*", "'*'"},
		{"~", "'~'"},
		{"--flag=value", "--flag=value"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			if got := ShellQuote(c.in); got != c.want {
				t.Errorf("ShellQuote(%q) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

// TestShellQuoteRoundTrip has a real shell read every quoted word back.
func TestShellQuoteRoundTrip(t *testing.T) {
	words := []string{"", "a b", "it's", "$(echo pwned)", "`id`", "\"dq\"", "back\\slash", "new\nline", "tab\there", "*?[]", "ünïcödé", "'", "''", "-n"}
	out, err := exec.Command("sh", "-c", "printf '%s\\000' "+ShellJoin(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(words) {
		t.Fatalf("shell read %d words, want %d: %q", len(got), len(words), got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("word %d: shell read %q, want %q", i, got[i], words[i])
		}
	}
}

func TestSplitCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"nixos-anywhere", []string{"nixos-anywhere"}},
		{DefaultNixosAnywhere, []string{"nix", "--extra-experimental-features", "nix-command flakes", "run", "github:nix-community/nixos-anywhere/1.13.0", "--"}},
		{`/opt/my build/na "x y" a\ b`, []string{"/opt/my", "build/na", "x y", "a b"}},
		{"  spaced   out  ", []string{"spaced", "out"}},
	}
	for _, c := range cases {
		got, err := SplitCommand(c.in)
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("SplitCommand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := SplitCommand("nix 'unterminated"); err == nil {
		t.Error("an unterminated quote was accepted")
	}
}
