package local

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bigbang-nix/bigbang/steps"
)

type gitFacts struct {
	isRepo    bool
	top       string
	untracked []string // relative to the flake folder
	err       error
}

// readGit lists the files of the flake folder that git does not know and
// does not ignore: a flake in a git repository cannot see them. The
// extra-files tree is left out; its own check says whether it is ignored.
func readGit(ctx context.Context, dir, extraFiles string) gitFacts {
	if dir == "" {
		return gitFacts{}
	}
	top, err := run(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel")
	if err != nil || top == "" {
		return gitFacts{}
	}
	f := gitFacts{isRepo: true, top: top}
	out, err := run(ctx, "git", "-C", dir, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
	if err != nil {
		f.err = err
		return f
	}
	extraAbs, _ := filepath.Abs(extraFiles)
	dirAbs, _ := filepath.Abs(dir)
	for _, p := range strings.Split(out, "\x00") {
		if p == "" {
			continue
		}
		if extraFiles != "" && strings.HasPrefix(filepath.Join(dirAbs, p)+"/", extraAbs+"/") {
			continue
		}
		f.untracked = append(f.untracked, p)
	}
	return f
}

func checkGit(dir string, f gitFacts) steps.Check {
	switch {
	case dir == "":
		return skip(IDGit, "the flake is not a local folder")
	case !f.isRepo:
		return ok(IDGit, "the flake folder is not in a git repository: nix reads every file in it")
	case f.err != nil:
		return warn(IDGit, "git cannot list the untracked files: "+f.err.Error(), "run git status in the flake folder")
	case len(f.untracked) == 0:
		return ok(IDGit, "every file of the flake folder is known to git")
	}
	names := f.untracked
	more := ""
	if len(names) > 8 {
		more = fmt.Sprintf(" and %d more", len(names)-8)
		names = names[:8]
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = steps.ShellQuote(n)
	}
	return warn(IDGit, fmt.Sprintf("nix cannot see files git does not track: %s%s", strings.Join(names, ", "), more),
		fmt.Sprintf("a flake in git sees only files git knows: git add %s (or ignore them if the flake does not need them)", strings.Join(quoted, " ")))
}
