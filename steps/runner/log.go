package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

// ErrLog is wrapped by every error about the transcript file; when Run
// returns it, nothing was started.
var ErrLog = errors.New("cannot write the transcript")

// DefaultLogPath is where a run's transcript goes when --log is not given:
// $XDG_STATE_HOME/bigbang/logs/<host>-<UTC time>.log, with ~/.local/state
// standing in for an unset XDG_STATE_HOME.
func DefaultLogPath(host string, now time.Time) string {
	dir := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(dir) {
		// The XDG spec says relative values are invalid and must be
		// ignored.
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			home = os.TempDir()
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "bigbang", "logs", safeName(host)+"-"+now.UTC().Format("20060102T150405Z")+".log")
}

// safeName keeps a host usable as part of a file name: an IPv6 literal's
// colons and brackets, and anything else odd, become '_'.
func safeName(host string) string {
	host = strings.Trim(host, "[]")
	if host == "" {
		return "host"
	}
	return steps.Target{Host: host}.FileName()
}

// OpenLog opens the transcript file for appending, creating it with mode
// 0600 and its missing folders with mode 0700: the transcript can hold
// host names, paths and the output of the target's commands. An existing
// file is appended to (a resumed run keeps the earlier transcript) and its
// mode is tightened to 0600.
func OpenLog(path string) (*os.File, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no file name given: pass --log FILE", ErrLog)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v; pass --log with a file in a folder you can write", ErrLog, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v; pass --log with a file in a folder you can write", ErrLog, err)
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %s has mode %04o and cannot be made private: %v; pass --log with another file", ErrLog, path, st.Mode().Perm(), err)
		}
	}
	return f, nil
}
