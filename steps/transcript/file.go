package transcript

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// ExplainFileContext is ExplainFile that gives up when ctx ends: reading
// a pipe or a terminal can block for ever, and Ctrl-C must still stop it.
func ExplainFileContext(ctx context.Context, path string, stdin io.Reader) (Report, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	type result struct {
		rep Report
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rep, err := ExplainFile(path, stdin)
		ch <- result{rep, err}
	}()
	select {
	case r := <-ch:
		return r.rep, r.err
	case <-ctx.Done():
		return Report{}, fmt.Errorf("interrupted while reading %s: %w", path, ctx.Err())
	}
}

// ExplainFile opens the transcript at path (stdin for "-") and classifies
// it, turning input problems into errors that say what to do.
func ExplainFile(path string, stdin io.Reader) (Report, error) {
	var r io.Reader
	name := path
	if path == "-" {
		r, name = stdin, "standard input"
	} else {
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return Report{}, fmt.Errorf("%s does not exist: give the path of a saved transcript (bigbang prints it after each run), or - to read standard input", path)
			}
			return Report{}, fmt.Errorf("open %s: %w: check the path and its permissions", path, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return Report{}, fmt.Errorf("%s is a folder: give one transcript file inside it", path)
		}
		r = f
	}
	rep, err := Explain(r)
	switch {
	case errors.Is(err, ErrEmpty):
		return rep, fmt.Errorf("%s is empty: nothing to explain; give the transcript of a run (bigbang's --log file, or nixos-anywhere's output saved with 2>&1 | tee)", name)
	case errors.Is(err, ErrNotText):
		return rep, fmt.Errorf("%s is not a text transcript (it holds NUL bytes or is not UTF-8): give the plain log file, decompressed if it was compressed", name)
	case err != nil:
		return rep, fmt.Errorf("%s: %w", name, err)
	}
	return rep, nil
}
