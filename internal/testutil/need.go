// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of a program the test needs. When it is missing the
// test is skipped, unless BIGBANG_REQUIRE_TOOLS is set (the README's test
// command sets it after installing them), in which case the test fails: a
// test run that silently skipped its real-parts tests must not pass.
func Need(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(dir + "/" + program); err == nil {
			return dir + "/" + program
		}
	}
	if os.Getenv("BIGBANG_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is not installed: run the README's test command (make test), which installs it", program)
	}
	t.Skipf("%s is not installed; make test installs it", program)
	return ""
}

// NeedRoot skips a test that needs root, saying why; with
// BIGBANG_REQUIRE_ROOT set it fails instead, for a run that must cover the
// root-only tests. The README's test command says when it runs without root
// (CI runs as root, where these tests always run).
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("BIGBANG_REQUIRE_ROOT") != "" {
		t.Fatalf("this test needs root: %s", why)
	}
	t.Skipf("needs root: %s", why)
}
