package transcript

import (
	"errors"
	"fmt"
	"io"
	"os"
)

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
