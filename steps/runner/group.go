package runner

import (
	"bytes"
	"errors"
	"os"
	"strconv"
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

// groupMembers lists the live (not zombie) processes of the group pgid,
// from /proc.
func groupMembers(pgid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var pids []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		state, pg, ok := procStat(pid)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads the state and the process group of pid from
// /proc/<pid>/stat. The command name in parentheses may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func procStat(pid int) (state byte, pgid int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(data[i+1:])
	// After the name: state, ppid, pgrp.
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
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
