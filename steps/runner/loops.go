package runner

import (
	"fmt"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

// nixos-anywhere has loops that never end on their own (the ssh-copy-id
// retry, the waits around kexec, the wait for the reboot), and none of them
// is silent: every turn prints. The watchdog therefore watches progress, not
// bytes. A line is progress when it is neither a known loop's chatter nor a
// repeat of a line seen a moment ago; while only chatter and repeats come,
// the phase stalls, and the stall names the loop from the chatter it saw.

// chatter is what kind of loop line a line is; chatNone is a line that may
// be progress.
type chatter uint8

const (
	chatNone chatter = iota
	chatBlank
	chatLogin   // "Warning: Permanently added …": an ssh login just worked
	chatNotice  // ssh's other notices of every connection
	chatCopyID  // ssh-copy-id's INFO lines
	chatCopyErr // ssh-copy-id's ERROR lines: why it cannot log in
	chatConnErr // "ssh: connect to host … Connection refused" and friends
	chatAuthErr // "root@host: Permission denied (publickey)."
)

// lineSign is what the watchdog and the front ends need to know about a
// line: whether it is noise (hidden from pane tails) and which loop's
// chatter it is.
type lineSign struct {
	noise bool
	kind  chatter
}

// signOf recognises the chatter of nixos-anywhere's loops and the noise of
// every run in a cleaned line.
func signOf(text string) lineSign {
	t := strings.TrimSpace(text)
	if t == "" {
		return lineSign{kind: chatBlank}
	}
	switch t[0] {
	case 'W':
		if strings.HasPrefix(t, "Warning: Permanently added ") && strings.HasSuffix(t, "to the list of known hosts.") {
			return lineSign{noise: true, kind: chatLogin}
		}
		if strings.HasPrefix(t, "Warning: Identity file ") && strings.Contains(t, "not accessible") {
			return lineSign{noise: true, kind: chatNotice}
		}
	case 'P':
		if strings.HasPrefix(t, "Pseudo-terminal will not be allocated") {
			return lineSign{noise: true, kind: chatNotice}
		}
	case 'C':
		if strings.HasPrefix(t, "Connection to ") && (strings.HasSuffix(t, " closed.") || strings.HasSuffix(t, " closed by remote host.")) {
			return lineSign{noise: true, kind: chatNotice}
		}
		if strings.HasPrefix(t, "Connection closed by ") || strings.HasPrefix(t, "Connection timed out during banner exchange") ||
			strings.HasPrefix(t, "Connection reset by ") {
			return lineSign{kind: chatConnErr}
		}
	case 's', 'k':
		if isConnErr(t) {
			return lineSign{kind: chatConnErr}
		}
	}
	if strings.Contains(t, ": Permission denied (") {
		return lineSign{kind: chatAuthErr}
	}
	// ssh-copy-id names itself by its path, which differs between systems
	// (/usr/bin/ssh-copy-id, /nix/store/…-openssh-…/bin/ssh-copy-id).
	if i := strings.Index(t, "ssh-copy-id: "); i >= 0 && i < 120 {
		rest := t[i+len("ssh-copy-id: "):]
		switch {
		case strings.HasPrefix(rest, "ERROR: "):
			return lineSign{kind: chatCopyErr}
		case strings.HasPrefix(rest, "INFO: "), strings.HasPrefix(rest, "WARNING: "):
			return lineSign{noise: true, kind: chatCopyID}
		}
	}
	return lineSign{}
}

// isConnErr reports whether t is ssh failing to reach a host.
func isConnErr(t string) bool {
	if strings.HasPrefix(t, "kex_exchange_identification: ") {
		return true
	}
	if !strings.HasPrefix(t, "ssh: ") {
		return false
	}
	for _, s := range []string{"Connection refused", "Connection timed out", "No route to host", "Network is unreachable",
		"Operation timed out", "Could not resolve hostname", "Name or service not known", "Temporary failure in name resolution"} {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// loopState is what the watchdog has seen since the last progress. It is
// guarded by run.mu.
type loopState struct {
	any                             bool // any line came
	login, copyID, connErr, authErr bool
	last                            chatter
	lastErr                         string // the last error text of ssh-copy-id or ssh
	lastRepeat                      string // the last line that came again
}

// note records a chatter line (or, with kind chatNone, a repeated line).
func (l *loopState) note(s lineSign, text string) {
	t := strings.TrimSpace(text)
	l.any = true
	switch s.kind {
	case chatLogin:
		l.login = true
	case chatCopyID:
		l.copyID = true
	case chatCopyErr:
		l.copyID = true
		if i := strings.Index(t, "ERROR: "); i >= 0 {
			t = strings.TrimSpace(t[i+len("ERROR: "):])
		}
		if t != "" {
			l.lastErr = t
		}
	case chatConnErr:
		l.connErr = true
		l.lastErr = t
	case chatAuthErr:
		l.authErr = true
		l.lastErr = t
	case chatNone:
		l.lastRepeat = t
	}
	if s.kind != chatBlank && s.kind != chatNotice {
		l.last = s.kind
	}
}

// stallWords names what is stuck in phase p after d without progress: the
// loop (one of the steps.Loop* names, or "" for a silent phase) and a
// sentence for the operator. login is the user@host ssh-copy-id logs in to.
func (l *loopState) stallWords(p steps.PhaseID, d time.Duration, login string) (loop, text string) {
	after := fmtDur(d)
	if login == "" {
		login = "the target"
	}
	why := ""
	if l.lastErr != "" {
		why = " (" + l.lastErr + ")"
	}
	switch {
	case p == steps.PhaseReboot && l.login:
		return steps.LoopRebootWait, "the machine has not gone down for the reboot after " + after +
			": nixos-anywhere can still log in to it, so the reboot has not happened"
	case p == steps.PhaseKexec && l.connErr && (l.last == chatConnErr || !l.login):
		return steps.LoopKexecUp, "the NixOS installer has not answered for " + after + " after kexec" + why +
			": open the provider's console to see whether it booted"
	case p == steps.PhaseKexec && l.authErr && !l.copyID:
		return steps.LoopKexecUp, "the NixOS installer does not let root log in after " + after + why +
			": give root the key (the user's keys may live in /etc/ssh/authorized_keys.d)"
	case p == steps.PhaseKexec && l.login:
		return steps.LoopKexecDown, "the machine has not gone down for kexec after " + after +
			": nixos-anywhere can still log in to the old system"
	case l.copyID:
		return steps.LoopSSHCopyID, "ssh-copy-id cannot log in to " + login + " after " + after + why +
			"; nixos-anywhere retries every 3 s for ever"
	case l.connErr:
		return steps.LoopRepeat, fmt.Sprintf("%s: no progress for %s, only failing connections%s", p.Title(), after, why)
	case l.any:
		last := ""
		if l.lastRepeat != "" {
			last = fmt.Sprintf(" (last: %q)", l.lastRepeat)
		}
		return steps.LoopRepeat, fmt.Sprintf("%s: no progress for %s, only ssh's notices and repeated lines%s", p.Title(), after, last)
	}
	return "", fmt.Sprintf("%s: no output for %s", p.Title(), after)
}

// fmtDur writes a duration as Go does ("2m0s"), to a tenth of a second
// below a minute and to the second above.
func fmtDur(d time.Duration) string {
	if d >= time.Minute {
		return d.Truncate(time.Second).String()
	}
	return d.Truncate(time.Second / 10).String()
}

// recent remembers the last recentSize distinct line texts, so that a line
// that comes again (a loop's turn) is not taken for progress. It belongs to
// the goroutine that processes the output.
type recent struct {
	ring  [recentSize]uint64
	next  int
	count map[uint64]uint16
}

const recentSize = 256

// seen reports whether text came within the last recentSize lines, and
// remembers it.
func (r *recent) seen(text string) bool {
	if r.count == nil {
		r.count = make(map[uint64]uint16, recentSize)
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(text); i++ {
		h ^= uint64(text[i])
		h *= 1099511628211
	}
	h |= 1 // zero marks an empty slot of the ring
	dup := r.count[h] > 0
	if old := r.ring[r.next]; old != 0 {
		if r.count[old] <= 1 {
			delete(r.count, old)
		} else {
			r.count[old]--
		}
	}
	r.ring[r.next] = h
	r.count[h]++
	r.next = (r.next + 1) % recentSize
	return dup
}
