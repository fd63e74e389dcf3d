package local

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/flake"
)

// The local part of bigbang check against the one nix eval it is built on,
// on the seed-shaped fixture (scripts/bench-check.sh prints them side by
// side). Each iteration of BenchmarkLocalRun starts with an empty cache, so
// it pays for the evaluation; BenchmarkLocalRunCached shows a second run.

func newWorldB(b *testing.B) *world {
	return newWorld(b, worldOpts{hostInRule: true, operatorAuth: true})
}

func BenchmarkNixEvalAlone(b *testing.B) {
	w := newWorldB(b)
	path, name, _ := steps.SplitFlake(w.cfg.Flake)
	argv := flake.Command(path, name)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("nix eval: %v\n%s", err, out)
		}
	}
}

func BenchmarkLocalRun(b *testing.B) {
	w := newWorldB(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		os.Setenv("XDG_CACHE_HOME", b.TempDir())
		b.StartTimer()
		checks, _, _ := Run(context.Background(), w.cfg)
		if steps.CountBlocking(checks) != 0 {
			b.Fatalf("blocking checks: %+v", checks)
		}
	}
}

func BenchmarkLocalRunCached(b *testing.B) {
	w := newWorldB(b)
	os.Setenv("XDG_CACHE_HOME", b.TempDir())
	Run(context.Background(), w.cfg)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Run(context.Background(), w.cfg)
	}
}
