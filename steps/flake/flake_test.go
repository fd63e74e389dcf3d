package flake

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/internal/testutil"
)

// CopyFixture copies testdata/flakes/<name> into a new temporary folder and
// returns it; with git set it becomes a git repository with every file
// added, as a flake in a repository is.
func copyFixture(t *testing.T, name string, git bool) string {
	t.Helper()
	src := filepath.Join("..", "..", "testdata", "flakes", name)
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if git {
		g := testutil.Need(t, "git")
		for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}} {
			if out, err := exec.Command(g, append([]string{"-C", dst}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
	}
	return dst
}

func setup(t *testing.T) {
	t.Helper()
	testutil.Need(t, "nix")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
}

func TestEvaluateSeed(t *testing.T) {
	setup(t)
	dir := copyFixture(t, "seed", true)
	opKey, err := os.ReadFile(filepath.Join(dir, "operator.pub"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := Evaluate(context.Background(), dir+"#vps-arm")
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.System != "aarch64-linux" {
		t.Errorf("system = %q, want aarch64-linux", c.System)
	}
	if want := []string{"broken", "grub-bios", "lockout", "no-disko", "no-sshd", "too-big", "vps-arm"}; !reflect.DeepEqual(info.Names, want) {
		t.Errorf("names = %v, want %v", info.Names, want)
	}
	if c.Disko == nil || len(c.Disko.Disks) != 1 {
		t.Fatalf("disko = %+v, want one disk", c.Disko)
	}
	d := c.Disko.Disks[0]
	if d.Device != "/dev/sda" || d.Table != "gpt" || len(d.Partitions) != 3 {
		t.Fatalf("disk = %+v", d)
	}
	var mounts []string
	for _, p := range orderedPartitions(d.Partitions) {
		mounts = append(mounts, p.Content.Mountpoints()...)
	}
	if want := []string{"/boot", "/nix", "/persistent"}; !reflect.DeepEqual(mounts, want) {
		t.Errorf("mount points = %v, want %v", mounts, want)
	}
	exp := c.Expect()
	if exp.System != "aarch64-linux" || exp.EFI == nil || !*exp.EFI {
		t.Errorf("expect = %+v, want aarch64-linux with EFI", exp)
	}
	if len(exp.Disks) != 1 || exp.Disks[0].Device != "/dev/sda" || exp.Disks[0].MinSizeBytes != seedMinSectors*SectorSize {
		t.Errorf("disks = %+v, want /dev/sda of %d bytes", exp.Disks, int64(seedMinSectors*SectorSize))
	}
	if !c.SSH.Enable || !reflect.DeepEqual(c.SSH.Ports, []int{22}) || c.SSH.PermitRootLogin == nil || *c.SSH.PermitRootLogin != "prohibit-password" {
		t.Errorf("ssh = %+v", c.SSH)
	}
	var root *User
	for i := range c.Users {
		if c.Users[i].Name == "root" {
			root = &c.Users[i]
		}
		if c.Users[i].Name == "nobody" {
			t.Errorf("users include nobody, who has no key and is not in wheel")
		}
	}
	if root == nil || len(root.Keys) != 1 || root.Keys[0] != strings.TrimSpace(string(opKey)) {
		t.Errorf("root = %+v, want the operator's key", root)
	}
	if c.Sops == nil || !reflect.DeepEqual(c.Sops.SSHKeyPaths, []string{"/persistent/etc/ssh/ssh_host_ed25519_key"}) ||
		c.Sops.DefaultSopsFile == nil || !strings.HasSuffix(*c.Sops.DefaultSopsFile, "/secrets/secrets.yaml") {
		t.Errorf("sops = %+v", c.Sops)
	}
	if c.Revision == nil || *c.Revision != "dirty" {
		t.Errorf("revision = %v, want dirty (uncommitted git tree)", c.Revision)
	}
}

func TestEvaluateVariants(t *testing.T) {
	setup(t)
	dir := copyFixture(t, "seed", false)
	tests := []struct {
		name   string
		check  func(t *testing.T, c Config)
		system string
		efi    *bool
	}{
		{"no-disko", func(t *testing.T, c Config) {
			if c.Disko != nil || c.Sops != nil {
				t.Errorf("disko = %v, sops = %v; want both nil (not used)", c.Disko, c.Sops)
			}
			if n, _ := c.Needs(); n != nil {
				t.Errorf("needs = %v, want none", n)
			}
		}, "x86_64-linux", ptr(true)},
		{"grub-bios", func(t *testing.T, c Config) {
			if !reflect.DeepEqual(c.SSH.Ports, []int{2222}) || c.SSH.OpenFirewall {
				t.Errorf("ssh = %+v", c.SSH)
			}
			admin := false
			for _, u := range c.Users {
				admin = admin || (u.Name == "admin" && u.Wheel() && len(u.Keys) == 1)
			}
			if !admin {
				t.Errorf("users = %+v, want admin in wheel with a key", c.Users)
			}
			if c.Boot.Loader() != "GRUB (BIOS)" {
				t.Errorf("loader = %s", c.Boot.Loader())
			}
		}, "x86_64-linux", ptr(false)},
		{"too-big", func(t *testing.T, c Config) {
			n, err := c.Needs()
			if err != nil || len(n) != 1 || n[0].MinSizeBytes < 1<<40 {
				t.Errorf("needs = %v, %v; want more than 1 TiB", n, err)
			}
		}, "aarch64-linux", ptr(true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := Evaluate(context.Background(), dir+"#"+tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if info.Config.System != tt.system {
				t.Errorf("system = %q, want %q", info.Config.System, tt.system)
			}
			if got := info.Config.Boot.EFI(); !reflect.DeepEqual(got, tt.efi) {
				t.Errorf("EFI = %v, want %v", deref(got), deref(tt.efi))
			}
			tt.check(t, info.Config)
		})
	}
}

func ptr[T any](v T) *T { return &v }
func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func TestEvaluateErrors(t *testing.T) {
	setup(t)
	dir := copyFixture(t, "seed", false)
	empty := t.TempDir()
	t.Run("no flake.nix", func(t *testing.T) {
		_, err := Evaluate(context.Background(), empty+"#vps-arm")
		if !errors.Is(err, ErrNoFlake) || !strings.Contains(err.Error(), empty) {
			t.Fatalf("err = %v, want ErrNoFlake naming the folder", err)
		}
	})
	t.Run("configuration missing", func(t *testing.T) {
		_, err := Evaluate(context.Background(), dir+"#vps-amd")
		var cm *ConfigMissingError
		if !errors.As(err, &cm) || !errors.Is(err, ErrNoConfig) {
			t.Fatalf("err = %v, want ConfigMissingError", err)
		}
		if !strings.Contains(err.Error(), "grub-bios, lockout") || len(cm.Have) != 7 {
			t.Fatalf("err = %v, want the list of configurations", err)
		}
	})
	t.Run("evaluation error", func(t *testing.T) {
		_, err := Evaluate(context.Background(), dir+"#broken")
		var ee *EvalError
		if !errors.As(err, &ee) || !errors.Is(err, ErrEval) {
			t.Fatalf("err = %v, want EvalError", err)
		}
		if !strings.Contains(ee.Message, "error:") || strings.Count(ee.Message, "\n") > 12 || strings.Contains(ee.Message, "show-trace") {
			t.Fatalf("message not trimmed to nix's error:\n%s", ee.Message)
		}
	})
	t.Run("no fragment", func(t *testing.T) {
		if _, err := Evaluate(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "<flake>#<name>") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("name with quotes and interpolation", func(t *testing.T) {
		_, err := Evaluate(context.Background(), dir+`#a"${b}\`)
		var cm *ConfigMissingError
		if !errors.As(err, &cm) {
			t.Fatalf("err = %v, want ConfigMissingError (the name must reach nix as a string)", err)
		}
	})
}

func TestEvaluateCacheAndStart(t *testing.T) {
	setup(t)
	dir := copyFixture(t, "seed", true)
	ref := dir + "#vps-arm"
	p := Start(context.Background(), ref)
	first, err := p.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first.FromCache {
		t.Fatal("first evaluation came from the cache")
	}
	second, err := Evaluate(context.Background(), ref)
	if err != nil || !second.FromCache || !reflect.DeepEqual(second.Config, first.Config) {
		t.Fatalf("second evaluation: fromCache=%v err=%v, want the cached result", second != nil && second.FromCache, err)
	}
	// A changed file invalidates the entry.
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(filepath.Join(dir, "flake.nix"), later, later); err != nil {
		t.Fatal(err)
	}
	third, err := Evaluate(context.Background(), ref)
	if err != nil || third.FromCache {
		t.Fatalf("after a change: fromCache=%v err=%v, want a new evaluation", third != nil && third.FromCache, err)
	}
	// A cancelled wait returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(context.Background(), ref).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v", err)
	}
}

func TestTrimNixError(t *testing.T) {
	in := "warning: Git tree '/x' is dirty\n\x1b[31;1merror:\x1b[0m cannot add a string to an integer\n\n       at /nix/store/x-source/flake.nix:3:5:\n(use '--show-trace' to show detailed location information)\n"
	got := TrimNixError(in)
	want := "  error: cannot add a string to an integer\n         at /nix/store/x-source/flake.nix:3:5:"
	if got != want {
		t.Fatalf("TrimNixError = %q, want %q", got, want)
	}
}

func TestLocalDir(t *testing.T) {
	for in, want := range map[string]string{".": ".", "/srv/flake": "/srv/flake", "path:/srv/f": "/srv/f",
		"git+file:///srv/f?ref=main": "/srv/f", "github:o/r": ""} {
		if got := LocalDir(in); got != want {
			t.Errorf("LocalDir(%q) = %q, want %q", in, got, want)
		}
	}
}
