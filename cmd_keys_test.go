package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testutil"
	"github.com/bigbang-nix/bigbang/steps"
)

func runKeysCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cfg steps.Config
	root := newRoot(&cfg)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"keys"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestKeysGeneratesAndFixesMode(t *testing.T) {
	testutil.Need(t, "nix")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/flakes/seed")); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "keys dir")
	args := []string{"--flake", dir + "#no-disko", "--extra-files", extra}
	out, err := runKeysCmd(t, args...)
	key := filepath.Join(extra, "persistent", "etc", "ssh", "ssh_host_ed25519_key")
	if err != nil || !strings.Contains(out, "generated a new host key "+key) || !strings.Contains(out, "age          age1") {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key not generated 0600: %v", err)
	}
	os.Chmod(key, 0o644)
	if out, err := runKeysCmd(t, args...); err == nil || !strings.Contains(out, "chmod 600") {
		t.Fatalf("mode 0644 without --fix-mode: err %v\n%s", err, out)
	}
	if out, err := runKeysCmd(t, append(args, "--fix-mode")...); err != nil || strings.Contains(out, "generated") {
		t.Fatalf("--fix-mode: %v\n%s", err, out)
	}
	if st, _ := os.Stat(key); st.Mode().Perm() != 0o600 {
		t.Fatalf("--fix-mode left %04o", st.Mode().Perm())
	}
}
