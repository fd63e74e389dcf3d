package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/runner"
)

// Free space the transcript's folder must have: below minLogSpace nothing
// starts (a transcript that cannot be written loses the record of a wipe);
// below lowLogSpace the operator is warned.
const (
	minLogSpace = 1 << 20
	lowLogSpace = 64 << 20
)

// ErrNotTranscript is wrapped when --log names a file that is not a
// bigbang or nixos-anywhere transcript: bigbang appends only to those.
var ErrNotTranscript = errors.New("not a transcript")

// checkLog makes sure the transcript can be written before anything runs,
// touching nothing: an existing file must be a transcript (a resumed run
// appends to it) and writable; a new one needs a folder that takes a
// write and has room. It returns a warning for low free space ("" when
// there is room).
func checkLog(path string) (warning string, err error) {
	if fi, err := os.Stat(path); err == nil {
		switch {
		case fi.IsDir():
			return "", fmt.Errorf("%w: --log %s is a folder: pass --log with a file name", runner.ErrLog, path)
		case !fi.Mode().IsRegular():
			// A device or a pipe the operator chose (a terminal, a
			// logger): bigbang writes into it as into a file, and says
			// at once when a write fails.
			if err := unix.Access(path, unix.W_OK); err != nil {
				return "", fmt.Errorf("%w: %s cannot be written (%v): pass --log with a file you can write", runner.ErrLog, path, err)
			}
			return "", nil
		}
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("%w: %v: pass --log with a file you can read and write", runner.ErrLog, err)
		}
		head := make([]byte, 64<<10)
		n, _ := io.ReadFull(f, head)
		f.Close()
		if n > 0 && !bytes.Contains(head[:n], []byte("### ")) && !bytes.Contains(head[:n], []byte("bigbang: ")) {
			return "", fmt.Errorf("%w: --log %s already holds something else; bigbang appends only to its own transcripts: pass --log with a new file name", ErrNotTranscript, path)
		}
		if err := unix.Access(path, unix.W_OK); err != nil {
			return "", fmt.Errorf("%w: %s cannot be written (%v): pass --log with a file you can write", runner.ErrLog, path, err)
		}
	}
	dir := filepath.Dir(path)
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			dir = d
			break
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	// A probe write says whether the folder really takes one (a full or a
	// read-only file system); it leaves nothing behind.
	probe, err := os.CreateTemp(dir, ".bigbang-probe-*")
	if err == nil {
		_, err = probe.Write(make([]byte, 4096))
		if cerr := probe.Close(); err == nil {
			err = cerr
		}
		os.Remove(probe.Name())
	}
	if err != nil {
		return "", fmt.Errorf("%w: the transcript's folder %s takes no write (%v): free some space there or pass --log with a file elsewhere", runner.ErrLog, dir, err)
	}
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		free := int64(st.Bavail) * int64(st.Bsize)
		switch {
		case free < minLogSpace:
			return "", fmt.Errorf("%w: only %s free in %s, the transcript's folder: free some space or pass --log with a file elsewhere", runner.ErrLog, steps.FormatBytes(free), dir)
		case free < lowLogSpace:
			return fmt.Sprintf("only %s free in %s, where the transcript goes: a long build may fill it", steps.FormatBytes(free), dir), nil
		}
	}
	return "", nil
}

// ErrLocked is wrapped when another bigbang works on the same machine.
var ErrLocked = errors.New("another bigbang is working on this machine")

// lock takes the machine's lock for what (install, backup, restore), so
// that two runs against one host and port never interleave a transcript or
// overwrite each other's receipt. It returns the release; with no lock
// folder in the world it takes none.
func (e *Engine) lock(t steps.Target, what string) (func(), error) {
	if e.World.LockDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(e.World.LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock folder %s: %w: check that it is writable", e.World.LockDir, err)
	}
	port := t.Port
	if port == 0 {
		port = 22
	}
	path := filepath.Join(e.World.LockDir, t.FileName()+"-"+strconv.Itoa(port)+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(f)
		f.Close()
		who := strings.TrimSpace(string(holder))
		if who == "" {
			who = "another bigbang"
		}
		return nil, fmt.Errorf("%w: %s (%s); wait for it to end, or stop it, then run again", ErrLocked, who, path)
	}
	_ = f.Truncate(0)
	fmt.Fprintf(f, "bigbang (pid %d) started the %s of %s at %s", os.Getpid(), what, t, e.now().Format(time.RFC3339))
	return func() {
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
