package flake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// nowFunc is the clock; a variable so that tests need not sleep.
var nowFunc = time.Now

// cacheVersion changes whenever the apply function or Info's shape does, so
// that an old cache entry is never read as a new one.
const cacheVersion = "flake-v3"

// CacheDir is where evaluations are cached: $XDG_CACHE_HOME/bigbang/flake.
func CacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "bigbang", "flake")
}

// cacheKey hashes what decides the result: the apply function, the
// configuration name, nix's version, flake.lock (the locked inputs) and the
// flake's tree. The tree is hashed by path, size, mode and modification
// time, which costs a directory walk and no reads; .git is left out except
// for its index, which says which files a git flake can see.
func cacheKey(dir, name string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", cacheVersion, applyTemplate, name, nixVersionString())
	if lock, err := os.ReadFile(filepath.Join(dir, "flake.lock")); err == nil {
		h.Write(lock)
	}
	h.Write([]byte{0})
	if st, err := os.Stat(filepath.Join(dir, ".git", "index")); err == nil {
		fmt.Fprintf(h, "index %d %d\x00", st.Size(), st.ModTime().UnixNano())
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") && rel != "." {
			return filepath.SkipDir
		}
		if n++; n > 20000 {
			return io.EOF // too big a tree to hash cheaply: do not cache
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%o\x00%d\x00", rel, info.Size(), info.Mode(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// nixVersionString identifies the nix binary by its resolved path, size and
// modification time: an upgrade changes it, and it costs no process start.
func nixVersionString() string {
	p, err := exec.LookPath("nix")
	if err != nil {
		return ""
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	st, err := os.Stat(p)
	if err != nil {
		return p
	}
	return fmt.Sprintf("%s %d %d", p, st.Size(), st.ModTime().UnixNano())
}

func loadCache(key string) *Info {
	dir := CacheDir()
	if key == "" || dir == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, key+".json"))
	if err != nil {
		return nil
	}
	var info Info
	if json.Unmarshal(data, &info) != nil {
		return nil
	}
	return &info
}

// saveCache writes the entry atomically; a cache that cannot be written is
// not an error, the next run evaluates again.
func saveCache(key string, info *Info) {
	dir := CacheDir()
	if key == "" || dir == "" {
		return
	}
	if os.MkdirAll(dir, 0o700) != nil {
		return
	}
	data, err := json.Marshal(info)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, key+".*.tmp")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Chmod(tmp.Name(), 0o600) != nil || os.Rename(tmp.Name(), filepath.Join(dir, key+".json")) != nil {
		os.Remove(tmp.Name())
	}
}

// Pending is an evaluation running in the background.
type Pending struct {
	done chan struct{}
	info *Info
	err  error
}

// Start begins evaluating ref in the background, so that the wizard's form
// hides the time nix takes.
func Start(ctx context.Context, ref string) *Pending {
	p := &Pending{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.info, p.err = Evaluate(ctx, ref)
	}()
	return p
}

// Done is closed when the evaluation has finished.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait returns the result of the evaluation, or ctx's error if ctx ends
// first (the evaluation goes on under the context Start was given).
func (p *Pending) Wait(ctx context.Context) (*Info, error) {
	// A caller that has already given up gets its own error, even when the
	// result happens to be ready (select would pick either at random).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return p.info, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
