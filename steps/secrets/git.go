package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/bigbang-nix/bigbang/steps"
)

// ErrNotGit is wrapped when a folder is not inside a git repository.
var ErrNotGit = errors.New("not in a git repository")

// GitState is what git says of a file.
type GitState struct {
	Tracked bool // in the index (git ls-files --error-unmatch)
	Ignored bool // matched by an ignore rule (git check-ignore)
}

// GitFileState asks git about path, from the repository that holds it. A
// path outside any repository wraps ErrNotGit.
func GitFileState(ctx context.Context, path string) (GitState, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return GitState{}, err
	}
	// The key's folder may not exist yet: ask from its nearest parent.
	dir := filepath.Dir(abs)
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil || len(out) == 0 {
		var ee *exec.ExitError
		if errors.As(err, &ee) || err == nil {
			return GitState{}, fmt.Errorf("%s: %w", path, ErrNotGit)
		}
		return GitState{}, fmt.Errorf("git: %w", err)
	}
	var st GitState
	st.Tracked = exec.CommandContext(ctx, "git", "-C", dir, "ls-files", "--error-unmatch", "--", abs).Run() == nil
	st.Ignored = exec.CommandContext(ctx, "git", "-C", dir, "check-ignore", "-q", "--", abs).Run() == nil
	return st, nil
}

// UntrackFix says how to take a tracked private key out of git and its
// history and replace it, since everyone with a clone has it.
func UntrackFix(path string) string {
	q := steps.ShellQuote(path)
	return fmt.Sprintf("the key is in git, so everyone with a clone has it: run git rm --cached %s, add it to .gitignore, "+
		"remove it from history (git filter-repo --invert-paths --path %s, then force-push), "+
		"then rotate it: delete %s and %s.pub, run bigbang keys to generate a new one, "+
		"put the new age recipient in .sops.yaml and run sops updatekeys on every secrets file", q, q, q, q)
}
