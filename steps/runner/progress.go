package runner

import (
	"regexp"
	"strconv"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

// DefaultProgressEvery is how often at most a phase's redrawn line goes out
// as a progress event; the last state always goes out.
const DefaultProgressEvery = 200 * time.Millisecond

// Nix's status line: "[1/3 built, 2/5 copied (12.3/40.1 MiB), 0.5 MiB DL]".
// While builds run it shows running/done/expected ("1/2/3 built").
var (
	reBuilt  = regexp.MustCompile(`(\d+)(?:/(\d+))?(?:/(\d+))? built`)
	reCopied = regexp.MustCompile(`(\d+)(?:/(\d+))?(?:/(\d+))? copied`)
	reMiB    = regexp.MustCompile(`\(([\d.]+)(?:/([\d.]+))?(?:/([\d.]+))? MiB\)`)
)

// parseProgress reads the figures of nix's status line in text; nil when
// text has none.
func parseProgress(text string) *steps.Progress {
	if len(text) == 0 || text[0] != '[' {
		return nil
	}
	var p steps.Progress
	if m := reBuilt.FindStringSubmatch(text); m != nil {
		p.HasBuilds = true
		p.Built, p.Builds = doneOf(m, atoi)
	}
	if m := reCopied.FindStringSubmatch(text); m != nil {
		p.HasCopies = true
		p.Copied, p.Copies = doneOf(m, atoi)
	}
	if m := reMiB.FindStringSubmatch(text); m != nil {
		p.HasMiB = true
		p.MiB, p.MiBTotal = doneOf(m, atof)
	}
	if !p.HasBuilds && !p.HasCopies && !p.HasMiB {
		return nil
	}
	return &p
}

// doneOf picks done and expected out of nix's "done", "done/expected" or
// "running/done/expected".
func doneOf[T int | float64](m []string, conv func(string) T) (done, total T) {
	switch {
	case m[3] != "":
		return conv(m[2]), conv(m[3])
	case m[2] != "":
		return conv(m[1]), conv(m[2])
	}
	return conv(m[1]), 0
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
