package runner

import "golang.org/x/sys/unix"

// zombie is SZOMB of <sys/proc.h>: a process that has ended and waits to
// be reaped.
const zombie = 5

// groupMembers lists the live (not zombie) processes of the group pgid,
// from the kernel's process table (macOS has no /proc).
func groupMembers(pgid int) []int {
	procs, err := unix.SysctlKinfoProcSlice("kern.proc.pgrp", pgid)
	if err != nil {
		return nil
	}
	var pids []int
	for _, p := range procs {
		if p.Proc.P_stat != zombie {
			pids = append(pids, int(p.Proc.P_pid))
		}
	}
	return pids
}

// procStat reads the state and the process group of pid; the state is 'Z'
// for a zombie and 'R' for any other process.
func procStat(pid int) (state byte, pgid int, ok bool) {
	p, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || p == nil || int(p.Proc.P_pid) != pid {
		return 0, 0, false
	}
	state = 'R'
	if p.Proc.P_stat == zombie {
		state = 'Z'
	}
	return state, int(p.Eproc.Pgid), true
}
