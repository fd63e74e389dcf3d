package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

func commitT(t *testing.T, dir, msg string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "flake.nix"), []byte("# "+msg+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Git(t, dir, "add", "-A")
	testutil.Git(t, dir, "commit", "-q", "-m", msg)
	return testutil.Git(t, dir, "rev-parse", "HEAD")
}

func TestPushedMain(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	ctx := context.Background()
	base := t.TempDir()
	origin, clone, other := filepath.Join(base, "origin.git"), filepath.Join(base, "clone"), filepath.Join(base, "other")
	testutil.Git(t, base, "init", "-q", "--bare", origin)
	testutil.Git(t, base, "init", "-q", clone)
	first := commitT(t, clone, "first")

	t.Run("no remote", func(t *testing.T) {
		_, err := PushedMain(ctx, clone, first)
		if !errors.Is(err, ErrNoRemote) || !strings.Contains(err.Error(), "git remote add") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not a repository", func(t *testing.T) {
		_, err := PushedMain(ctx, t.TempDir(), first)
		if !errors.Is(err, ErrNotRepo) {
			t.Fatalf("err %v", err)
		}
	})

	testutil.Git(t, clone, "remote", "add", "origin", origin)
	testutil.Git(t, clone, "push", "-q", "-u", "origin", "main")
	t.Run("same", func(t *testing.T) {
		p, err := PushedMain(ctx, clone, first[:12])
		if err != nil || p.Ref != "origin/main" || p.Revision != first || p.Relation != RelSame || p.FetchedAt == nil || time.Since(*p.FetchedAt) > time.Minute || p.CommittedAt.IsZero() {
			t.Fatalf("%+v %v", p, err)
		}
	})

	// Someone else pushes two commits; the clone fetches them.
	testutil.Git(t, base, "clone", "-q", origin, other)
	commitT(t, other, "second")
	third := commitT(t, other, "third")
	testutil.Git(t, other, "push", "-q", "origin", "main")
	testutil.Git(t, clone, "fetch", "-q")
	t.Run("behind", func(t *testing.T) {
		p, err := PushedMain(ctx, clone, first)
		if err != nil || p.Revision != third || p.Relation != RelBehind || p.Ahead != 2 {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("ahead", func(t *testing.T) {
		testutil.Git(t, clone, "merge", "-q", "--ff-only", "origin/main")
		local := commitT(t, clone, "local")
		p, err := PushedMain(ctx, clone, local)
		if err != nil || p.Relation != RelAhead {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("unknown and odd revisions", func(t *testing.T) {
		for _, rev := range []string{"0123abcd", "--all", "HEAD", ""} {
			p, err := PushedMain(ctx, clone, rev)
			if err != nil || p.Relation != RelUnknown || p.Revision != third {
				t.Fatalf("%q: %+v %v", rev, p, err)
			}
		}
	})
	t.Run("diverged", func(t *testing.T) {
		testutil.Git(t, clone, "checkout", "-q", "-b", "side", first)
		side := commitT(t, clone, "side")
		p, err := PushedMain(ctx, clone, side)
		if err != nil || p.Relation != RelDiverged || p.Ahead != 2 {
			t.Fatalf("%+v %v", p, err)
		}
	})
}
