package ui

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

// expandHome turns a leading ~/ into the home folder, as a shell would.
func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return p
}

// formatDuration prints 4s, 1m05s or 1h02m.
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		s := int(d/time.Second) % 60
		return itoa(int(d/time.Minute)) + "m" + pad2(s) + "s"
	default:
		return itoa(int(d/time.Hour)) + "h" + pad2(int(d/time.Minute)%60) + "m"
	}
}

func pad2(n int) string {
	if n < 10 {
		return "0" + itoa(n)
	}
	return itoa(n)
}

// diskSize prints a disk's size as the provider sells it (decimal GB) and
// as Linux tools show it (GiB).
func diskSize(n int64) string {
	if n <= 0 {
		return "size unknown"
	}
	return strconv.FormatInt((n+500_000_000)/1_000_000_000, 10) + " GB (" + steps.FormatBytes(n) + ")"
}
