package runner

import (
	"errors"
	"syscall"
	"time"
)

// groupAlive reports whether any process of the process group pgid is still
// running. Zombies do not count: they are dead and only wait for their
// parent (or init, for orphans) to reap them.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	return len(groupMembers(pgid)) > 0
}

// waitGroupGone polls until no process of the group is alive or d has
// passed; it reports whether the group is gone.
func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopGroup ends every process of the group: SIGINT (what Ctrl-C in a
// terminal sends, so nixos-anywhere's traps clean up), then SIGTERM after
// grace, then SIGKILL after termGrace, and waits until the group is gone.
// Grandchildren that stay in the group are ended with it, so none is left
// behind holding the terminal or talking to the target.
func stopGroup(pgid int, grace, termGrace time.Duration) {
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, grace}, {syscall.SIGTERM, termGrace}, {syscall.SIGKILL, 5 * time.Second}} {
		if err := syscall.Kill(-pgid, step.sig); errors.Is(err, syscall.ESRCH) {
			return
		}
		// SIGCONT wakes a stopped process so that it can act on the signal.
		_ = syscall.Kill(-pgid, syscall.SIGCONT)
		if waitGroupGone(pgid, step.wait) {
			return
		}
	}
}
