package reinstall

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the tests a state folder of their own, so that the seals
// Backup writes and Restore reads stay out of the operator's.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bigbang-reinstall-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_STATE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
