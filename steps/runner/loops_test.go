package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

func TestSignOf(t *testing.T) {
	for _, tc := range []struct {
		line  string
		noise bool
		kind  chatter
	}{
		{"Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.", true, chatLogin},
		{"Warning: Permanently added '::1' (ED25519) to the list of known hosts.", true, chatLogin},
		{"Pseudo-terminal will not be allocated because stdin is not a terminal.", true, chatNotice},
		{"Connection to 192.0.2.7 closed.", true, chatNotice},
		{"Connection to 192.0.2.7 closed by remote host.", true, chatNotice},
		{"Warning: Identity file /tmp/tmp.X/nixos-anywhere not accessible: No such file or directory.", true, chatNotice},
		{`/usr/bin/ssh-copy-id: INFO: Source of key(s) to be installed: "/tmp/k.pub"`, true, chatCopyID},
		{"/nix/store/abc-openssh-9.9p1/bin/ssh-copy-id: INFO: attempting to log in with the new key(s)", true, chatCopyID},
		{"/usr/bin/ssh-copy-id: ERROR: ssh: connect to host 127.0.0.1 port 1: Connection refused", false, chatCopyErr},
		{"root@127.0.0.1: Permission denied (publickey).", false, chatAuthErr},
		{"ssh: connect to host 192.0.2.7 port 22: Connection refused", false, chatConnErr},
		{"ssh: connect to host 192.0.2.7 port 22: Connection timed out", false, chatConnErr},
		{"ssh: Could not resolve hostname [::1]: Name or service not known", false, chatConnErr},
		{"kex_exchange_identification: read: Connection reset by peer", false, chatConnErr},
		{"", false, chatBlank},
		{"   ", false, chatBlank},
		// Lines that are progress.
		{"### Rebooting ###", false, chatNone},
		{"copying path '/nix/store/x-glibc' to 'ssh://root@192.0.2.7'...", false, chatNone},
		{"Warning: the flake is dirty", false, chatNone},
		{"Connection to the store failed, retrying", false, chatNone},
		{"ssh: this is not an error bigbang knows", false, chatNone},
	} {
		t.Run(tc.line, func(t *testing.T) {
			if got := signOf(tc.line); got.noise != tc.noise || got.kind != tc.kind {
				t.Fatalf("signOf = %+v, want noise %v kind %d", got, tc.noise, tc.kind)
			}
		})
	}
}

func TestStallWords(t *testing.T) {
	login := lineSign{noise: true, kind: chatLogin}
	refused := lineSign{kind: chatConnErr}
	for _, tc := range []struct {
		name     string
		phase    steps.PhaseID
		lines    []string
		wantLoop string
		want     []string
	}{
		{"reboot wait", steps.PhaseReboot, []string{"Warning: Permanently added 'h' (ED25519) to the list of known hosts."},
			steps.LoopRebootWait, []string{"the machine has not gone down for the reboot after 2m0s"}},
		{"kexec: old system stays up", steps.PhaseKexec, []string{"Warning: Permanently added 'h' (ED25519) to the list of known hosts."},
			steps.LoopKexecDown, []string{"has not gone down for kexec after 2m0s"}},
		{"kexec: installer does not answer", steps.PhaseKexec, []string{"ssh: connect to host 192.0.2.7 port 22: Connection refused"},
			steps.LoopKexecUp, []string{"the NixOS installer has not answered for 2m0s", "port 22: Connection refused", "console"}},
		{"ssh-copy-id refused", steps.PhaseConnect, []string{"/usr/bin/ssh-copy-id: INFO: attempting to log in", "", "/usr/bin/ssh-copy-id: ERROR: ssh: connect to host 192.0.2.7 port 22: Connection refused"},
			steps.LoopSSHCopyID, []string{"ssh-copy-id cannot log in to root@192.0.2.7 after 2m0s", "(ssh: connect to host 192.0.2.7 port 22: Connection refused)"}},
		{"ssh-copy-id denied", steps.PhaseConnect, []string{"/usr/bin/ssh-copy-id: INFO: 1 key(s) remain", "root@192.0.2.7: Permission denied (publickey)."},
			steps.LoopSSHCopyID, []string{"ssh-copy-id cannot log in to root@192.0.2.7", "Permission denied (publickey)"}},
		{"notices only", steps.PhaseDisko, []string{"Pseudo-terminal will not be allocated because stdin is not a terminal."},
			steps.LoopRepeat, []string{"Disko: no progress for 2m0s"}},
		{"silence", steps.PhaseDisko, nil, "", []string{"Disko: no output for 2m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l loopState
			for _, s := range tc.lines {
				l.note(signOf(s), s)
			}
			loop, text := l.stallWords(tc.phase, 2*time.Minute+300*time.Millisecond, "root@192.0.2.7")
			if loop != tc.wantLoop {
				t.Errorf("loop %q, want %q", loop, tc.wantLoop)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q does not say %q", text, w)
				}
			}
		})
	}
	// The kinds the table uses are what signOf says.
	if signOf("Warning: Permanently added 'h' (ED25519) to the list of known hosts.") != login ||
		signOf("ssh: connect to host h port 22: Connection refused") != refused {
		t.Fatal("signOf changed")
	}
}

func TestRecent(t *testing.T) {
	var r recent
	if r.seen("a") {
		t.Fatal("a first line was seen before")
	}
	if !r.seen("a") {
		t.Fatal("a repeated line was not seen")
	}
	for i := 0; i < recentSize; i++ {
		r.seen(strings.Repeat("x", i+2))
	}
	if r.seen("a") {
		t.Fatal("a line from more than recentSize lines ago still counts as a repeat")
	}
	if len(r.count) > recentSize {
		t.Fatalf("%d entries remembered, want at most %d", len(r.count), recentSize)
	}
}

func TestParseProgress(t *testing.T) {
	for _, tc := range []struct {
		text string
		want *steps.Progress
	}{
		{"[0/3 built] ", &steps.Progress{HasBuilds: true, Built: 0, Builds: 3}},
		{"[1/2/3 built, 2 copied (12.3/40.1 MiB)] building '/nix/store/x.drv'",
			&steps.Progress{HasBuilds: true, Built: 2, Builds: 3, HasCopies: true, Copied: 2, HasMiB: true, MiB: 12.3, MiBTotal: 40.1}},
		{"[3 built, 5 copied (40.1 MiB)]", &steps.Progress{HasBuilds: true, Built: 3, HasCopies: true, Copied: 5, HasMiB: true, MiB: 40.1}},
		{"[4/12 copied (13.4/40.1 MiB)] copying path '/nix/store/x' to 'ssh://root@h'",
			&steps.Progress{HasCopies: true, Copied: 4, Copies: 12, HasMiB: true, MiB: 13.4, MiBTotal: 40.1}},
		{"building the system", nil},
		{"[ ok ] started", nil},
	} {
		t.Run(tc.text, func(t *testing.T) {
			got := parseProgress(tc.text)
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("parseProgress = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSplitterRedraw(t *testing.T) {
	var lines []string
	sp := &splitter{max: DefaultMaxLine, emit: func(l []byte) { lines = append(lines, string(l)) }}
	cases := []struct {
		in, redraw, prev string
	}{
		{"warning: dirty\r\n", "", ""},
		{"\r[0/3 built] \x1b[K", "[0/3 built] \x1b[K", ""},
		{"\r[1/3 built]\x1b[K\r[2/3 built]", "[2/3 built]", "[1/3 built]\x1b[K"},
		{"\x1b[K", "[2/3 built]\x1b[K", "[1/3 built]\x1b[K"},
		// A '\r' at the end of a chunk may be the start of "\r\n".
		{"\r", "", ""},
		{"[3/3 built]", "[3/3 built]", "[2/3 built]\x1b[K"},
		// nix clears its line when it is done: the last state is kept.
		{"\x1b[K\r\x1b[K", "\x1b[K", "[3/3 built]\x1b[K"},
		{"\r\x1b[K### Uploading install SSH keys ###\n", "", ""},
		{"no redraw yet", "", ""},
	}
	for i, s := range cases {
		sp.write([]byte(s.in))
		cur, prev := sp.redraw()
		if string(cur) != s.redraw || string(prev) != s.prev {
			t.Fatalf("step %d (%q): redraw %q, %q, want %q, %q", i, s.in, cur, prev, s.redraw, s.prev)
		}
	}
	want := []string{"warning: dirty", "\x1b[K### Uploading install SSH keys ###"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", lines, want)
	}
}
