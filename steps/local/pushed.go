package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Relation is how a revision stands to the pushed main.
type Relation string

// The relations of a revision to the pushed main.
const (
	// RelSame: the revision is the pushed main.
	RelSame Relation = "same"
	// RelBehind: the revision is an ancestor of the pushed main, which
	// has moved on since.
	RelBehind Relation = "behind"
	// RelAhead: the pushed main is an ancestor of the revision, which is
	// not pushed yet.
	RelAhead Relation = "ahead"
	// RelDiverged: neither is an ancestor of the other.
	RelDiverged Relation = "diverged"
	// RelUnknown: the local clone does not have the revision.
	RelUnknown Relation = "unknown"
)

// Pushed is the flake repository's pushed main as the local clone last saw
// it (its remote-tracking ref), and how a revision relates to it.
type Pushed struct {
	Ref         string    `json:"ref"`      // e.g. "origin/main"
	Revision    string    `json:"revision"` // the ref's commit
	CommittedAt time.Time `json:"committed_at"`
	// FetchedAt is when the clone last updated the ref (a fetch, a pull
	// or a push); nil when it cannot tell.
	FetchedAt *time.Time `json:"fetched_at"`
	Relation  Relation   `json:"relation"`
	// Ahead is how many commits the pushed main has that the revision
	// lacks (behind or diverged).
	Ahead int `json:"commits_ahead"`
}

// Errors of PushedMain, matched with errors.Is.
var (
	// ErrNoGit: git is not installed on the operator's machine.
	ErrNoGit = errors.New("git is not installed")
	// ErrNotRepo: the flake folder is not in a git repository.
	ErrNotRepo = errors.New("the flake folder is not in a git repository")
	// ErrNoRemote: the clone has no remote, or no remote-tracking branch.
	ErrNoRemote = errors.New("the clone has no remote-tracking branch")
)

// hexRev is what a git revision given by the running system may look like;
// anything else (a tag name, an option) is never handed to git.
var hexRev = regexp.MustCompile(`^[0-9a-f]{4,64}$`)

// PushedMain reads the pushed main of the git clone that holds dir: the
// remote's default branch (<remote>/HEAD), else <remote>/main or
// <remote>/master, else the current branch's upstream, where <remote> is
// the current branch's remote or origin. It only reads: nothing is
// fetched, so the answer is as old as FetchedAt says. rev (a commit of the
// running system, without a "-dirty" suffix) is placed against it.
func PushedMain(ctx context.Context, dir, rev string) (Pushed, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return Pushed{}, fmt.Errorf("%w: install git to compare the running revision with the pushed one", ErrNoGit)
	}
	git := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
		err := cmd.Run()
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return strings.TrimSpace(out.String()), err
	}
	if _, err := git("rev-parse", "--show-toplevel"); err != nil {
		if ctx.Err() != nil {
			return Pushed{}, ctx.Err()
		}
		return Pushed{}, fmt.Errorf("%s: %w", dir, ErrNotRepo)
	}
	remote := "origin"
	upstream, _ := git("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}")
	if r, _, ok := strings.Cut(upstream, "/"); ok && r != "" {
		remote = r
	}
	var candidates []string
	if head, err := git("symbolic-ref", "--quiet", "refs/remotes/"+remote+"/HEAD"); err == nil {
		candidates = append(candidates, strings.TrimPrefix(head, "refs/remotes/"))
	}
	candidates = append(candidates, remote+"/main", remote+"/master")
	if upstream != "" {
		candidates = append(candidates, upstream)
	}
	var p Pushed
	for _, c := range candidates {
		if out, err := git("rev-parse", "--verify", "--quiet", "refs/remotes/"+c+"^{commit}"); err == nil && out != "" {
			p.Ref, p.Revision = c, out
			break
		}
	}
	if ctx.Err() != nil {
		return Pushed{}, ctx.Err()
	}
	if p.Ref == "" {
		remotes, _ := git("remote")
		if remotes == "" {
			return Pushed{}, fmt.Errorf("%w: the clone has no remote (git remote add origin <url>; git push -u origin main)", ErrNoRemote)
		}
		return Pushed{}, fmt.Errorf("%w: no %s/main, %s/master or upstream branch (git fetch %s)", ErrNoRemote, remote, remote, remote)
	}
	if ct, err := git("log", "-1", "--format=%ct", p.Revision); err == nil {
		if sec, err := strconv.ParseInt(ct, 10, 64); err == nil {
			p.CommittedAt = time.Unix(sec, 0)
		}
	}
	p.FetchedAt = fetchedAt(git, p.Ref)
	p.Relation = RelUnknown
	if !hexRev.MatchString(rev) {
		return p, ctx.Err()
	}
	full, err := git("rev-parse", "--verify", "--quiet", rev+"^{commit}")
	switch {
	case err != nil || full == "":
	case full == p.Revision:
		p.Relation = RelSame
	default:
		_, behind := git("merge-base", "--is-ancestor", full, p.Revision)
		_, ahead := git("merge-base", "--is-ancestor", p.Revision, full)
		switch {
		case behind == nil:
			p.Relation = RelBehind
		case ahead == nil:
			p.Relation = RelAhead
		default:
			p.Relation = RelDiverged
		}
		if p.Relation != RelAhead {
			if n, err := git("rev-list", "--count", full+".."+p.Revision); err == nil {
				p.Ahead, _ = strconv.Atoi(n)
			}
		}
	}
	return p, ctx.Err()
}

// fetchedAt is when the clone last wrote the remote-tracking ref: the
// newer of its loose ref file and FETCH_HEAD (nil when neither is there).
func fetchedAt(git func(...string) (string, error), ref string) *time.Time {
	var files []string
	for _, flag := range []string{"--git-dir", "--git-common-dir"} {
		if d, err := git("rev-parse", "--path-format=absolute", flag); err == nil && d != "" {
			files = append(files, filepath.Join(d, "FETCH_HEAD"))
			if flag == "--git-common-dir" {
				files = append(files, filepath.Join(d, "refs", "remotes", filepath.FromSlash(ref)))
			}
		}
	}
	var newest *time.Time
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			if t := st.ModTime(); newest == nil || t.After(*newest) {
				newest = &t
			}
		}
	}
	return newest
}
