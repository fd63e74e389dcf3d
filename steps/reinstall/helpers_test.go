package reinstall

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// localRemote runs commands in a local `sh -c`, as the target's shell
// would: real tar, real files.
type localRemote struct {
	path string // PATH for the commands; empty keeps this process's

	mu   sync.Mutex
	cmds []string
}

func (l *localRemote) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	l.mu.Lock()
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	if l.path != "" {
		c.Env = append(os.Environ(), "PATH="+l.path)
	}
	// Kill the whole process group on cancel: tar's compressor would
	// otherwise keep the pipes open.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 5 * time.Second
	return c.Run()
}

func (l *localRemote) commands() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.cmds...)
}

// errCut stands for a connection that dropped.
var errCut = errors.New("connection lost")

// cutRemote is a localRemote whose output stream breaks after limit bytes,
// as when the network goes away in the middle of a backup.
type cutRemote struct {
	localRemote
	limit int64
}

type cutWriter struct {
	w    io.Writer
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		n, _ := c.w.Write(p[:c.left])
		c.left = 0
		return n, errCut
	}
	c.left -= int64(len(p))
	return c.w.Write(p)
}

func (c *cutRemote) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if !strings.Contains(cmd, "tar --create") {
		return c.localRemote.Run(ctx, cmd, stdin, stdout, stderr)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := c.localRemote.Run(ctx, cmd, stdin, &cutWriter{w: stdout, left: c.limit}, stderr)
	if err != nil {
		return fmt.Errorf("%w: %v", errCut, err)
	}
	return nil
}

// treeHash describes a directory tree completely enough that two trees
// with the same hash are the same to a restore: every path with its type,
// permission bits, owner, size, content hash, link target, hard-link group
// and extended attributes.
func treeHash(t *testing.T, root string) (string, []string) {
	t.Helper()
	var lines []string
	inodes := map[[2]uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%q %s %o %d:%d", rel, fi.Mode().Type(), fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := inodes[key]; ok && st.Nlink > 1 {
				line += " hardlink=" + first
				break
			}
			inodes[key] = rel
			line += fmt.Sprintf(" size=%d sha256=%s mtime=%d", fi.Size(), fileHash(t, p), fi.ModTime().Unix())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		}
		line += xattrs(p)
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("tree hash of %s: %v", root, err)
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:]), lines
}

func fileHash(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func xattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	var out []string
	for _, name := range names {
		v := make([]byte, 4096)
		m, err := unix.Getxattr(p, name, v)
		if err != nil {
			continue
		}
		out = append(out, name+"="+hex.EncodeToString(v[:m]))
	}
	return " xattr[" + strings.Join(out, ",") + "]"
}

// sparseSize is the logical size of the sparse file in the test tree.
const sparseSize = 512 << 20

// makeTree fills root with what a machine's state holds: odd numeric
// owners, modes, symlinks (one dangling), hard links, a large sparse file,
// a fifo, names with spaces, quotes and newlines, and an extended
// attribute where the file system takes one.
func makeTree(t *testing.T, root string) {
	t.Helper()
	testutil.NeedRoot(t, "the tree has files owned by other users")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, content string, mode os.FileMode, uid, gid int) {
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(content), 0o600))
		must(os.Chmod(p, mode))
		must(os.Lchown(p, uid, gid))
	}
	must(os.MkdirAll(filepath.Join(root, "var/lib/postgresql"), 0o700))
	must(os.Lchown(filepath.Join(root, "var/lib/postgresql"), 71, 71))
	write("var/lib/postgresql/PG_VERSION", "16\n", 0o600, 71, 71)
	write("etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n", 0o600, 0, 0)
	write("etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA test\n", 0o644, 0, 0)
	write("home/op/odd owner", "owned by a uid no passwd names\n", 0o640, 12345, 54321)
	write("home/op/name with spaces and 'quotes'", "x", 0o644, 1000, 100)
	write("home/op/new\nline", "a name with a newline", 0o600, 1000, 100)
	write("home/op/ünïcödé", "utf-8", 0o644, 1000, 100)
	write("usr/bin/setuid-tool", "#!/bin/sh\n", 0o4755, 0, 0)
	must(os.Mkdir(filepath.Join(root, "tmp-sticky"), 0o1777))
	must(os.Mkdir(filepath.Join(root, "empty dir"), 0o750))
	must(os.Symlink("../etc/ssh/ssh_host_ed25519_key.pub", filepath.Join(root, "home/op/link to key")))
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "home/op/dangling")))
	must(os.Lchown(filepath.Join(root, "home/op/dangling"), 1000, 100))
	must(os.Link(filepath.Join(root, "home/op/odd owner"), filepath.Join(root, "var/hardlink to odd owner")))
	must(syscall.Mkfifo(filepath.Join(root, "var/fifo"), 0o620))
	// A large sparse file: a few bytes at each end, holes between.
	sp := filepath.Join(root, "var/lib/sparse.img")
	f, err := os.Create(sp)
	must(err)
	_, err = f.WriteString("head")
	must(err)
	_, err = f.WriteAt([]byte("tail"), sparseSize-4)
	must(err)
	must(f.Close())
	// An xattr where the file system has them (user.* needs ext4, xfs or
	// tmpfs ≥ 6.6); the tree hash compares them when present.
	_ = unix.Setxattr(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key"), "user.bigbang", []byte("kept"), 0)
	// Pin mtimes so the comparison is not at the mercy of the clock.
	old := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink == 0 {
			_ = os.Chtimes(p, old, old)
		}
		return nil
	})
}

// allocated returns the bytes a file really occupies on disk.
func allocated(t *testing.T, p string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}
