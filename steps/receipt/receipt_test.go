package receipt

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/reinstall"
)

func sample() Receipt {
	return Receipt{
		Host: "203.0.113.7", User: "opc", Port: 22, Identity: "/home/op/.ssh/id_ed25519",
		InstalledAt: time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC),
		Flake:       ".#vps-arm", FlakeRevision: "0123abcd", System: "aarch64-linux", BuildOn: "remote",
		Disko: []reinstall.FlakeDisk{{Name: "main", Device: "/dev/sda", Table: "gpt", Partitions: []reinstall.FlakePartition{
			{Name: "ESP", Size: "512M", Format: "vfat", Mountpoint: "/boot", Type: "EF00"},
			{Name: "persistent", Size: "100%", Format: "ext4", Mountpoint: "/persistent"},
		}}},
		HostKeyFingerprint: "SHA256:abc",
		Phases: []PhaseTime{
			{Phase: steps.PhaseConnect, State: steps.StateDone, Seconds: 2.5},
			{Phase: steps.PhaseKexec, State: steps.StateDone, Seconds: 61},
		},
		Log: "/home/op/.local/state/bigbang/logs/203.0.113.7.log",
	}
}

func TestWriteRead(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	tests := []struct {
		name, host, file string
	}{
		{"ipv4", "203.0.113.7", "203.0.113.7.json"},
		{"ipv6", "[2001:db8::1]", "2001_db8__1.json"},
		{"name", "vps.example.org", "vps.example.org.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sample()
			r.Host = tt.host
			p, err := Write(r)
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(state, "bigbang", "hosts", tt.file) {
				t.Fatalf("path %s", p)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("receipt mode %v %v", fi.Mode(), err)
			}
			for _, d := range []string{filepath.Dir(p), filepath.Dir(filepath.Dir(p))} {
				if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
					t.Fatalf("%s mode %v %v", d, fi.Mode(), err)
				}
			}
			got, err := Read(tt.host, 22)
			if err != nil {
				t.Fatal(err)
			}
			r.Version = Version
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("read back\n%+v\nwant\n%+v", got, r)
			}
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "bigbang", "hosts")); len(entries) != len(tests) {
		t.Fatalf("stray files: %v", entries)
	}
}

func TestReadErrors(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	if _, err := Read("nobody", 22); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	dir := filepath.Join(state, "bigbang", "hosts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, content, want string }{
		{"garbage", "{", "not valid JSON"},
		{"newer", `{"version": 99, "host": "x"}`, "update bigbang"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, tt.name+".json"), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Read(tt.name, 22); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAddBackupAndPrefill(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	if _, err := Write(sample()); err != nil {
		t.Fatal(err)
	}
	older := Backup{Path: "/b/1.tar.zst", Created: time.Unix(100, 0).UTC(), Source: "/persistent"}
	newer := Backup{Path: "/b/2.tar.zst", Created: time.Unix(200, 0).UTC(), Source: "/persistent"}
	for _, b := range []Backup{newer, older} {
		if err := AddBackup("203.0.113.7", 22, b); err != nil {
			t.Fatal(err)
		}
	}
	// A host without a receipt gets one holding only the backup.
	if err := AddBackup("fresh", 22, older); err != nil {
		t.Fatal(err)
	}
	r, err := Read("203.0.113.7", 22)
	if err != nil {
		t.Fatal(err)
	}
	if last, ok := r.LastBackup(); !ok || last.Path != newer.Path || len(r.Backups) != 2 || r.Flake != ".#vps-arm" {
		t.Fatalf("receipt %+v", r)
	}
	if f, err := Read("fresh", 22); err != nil || len(f.Backups) != 1 {
		t.Fatalf("fresh: %+v %v", f, err)
	}

	tests := []struct {
		name string
		cfg  func(*steps.Config)
		want func(*steps.Config)
	}{
		{"defaults are filled", func(*steps.Config) {}, func(c *steps.Config) {
			c.Identity, c.BuildOn = "/home/op/.ssh/id_ed25519", "remote"
		}},
		{"flags win", func(c *steps.Config) { c.User, c.Flake = "root", ".#other" }, func(c *steps.Config) {
			c.User, c.Flake, c.Identity, c.BuildOn = "root", ".#other", "/home/op/.ssh/id_ed25519", "remote"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, want := steps.DefaultConfig(), steps.DefaultConfig()
			tt.cfg(&cfg)
			tt.want(&want)
			r.Prefill(&cfg)
			if !reflect.DeepEqual(cfg, want) {
				t.Fatalf("prefilled %+v\nwant %+v", cfg, want)
			}
		})
	}
}

// TestPrefillLogin: after a verified install the receipt's login (root on
// the new system's port) fills in the user and port, not the user the
// machine had before; flags the operator gave stay.
func TestPrefillLogin(t *testing.T) {
	r := Receipt{Host: "203.0.113.7", User: "opc", Port: 22, Login: &Login{User: "root", Port: 2222}}
	cfg := steps.DefaultConfig()
	r.Prefill(&cfg)
	if cfg.User != "root" || cfg.Port != 2222 {
		t.Errorf("prefilled %s:%d, want the installed system's root:2222", cfg.User, cfg.Port)
	}
	cfg = steps.DefaultConfig()
	cfg.User = "admin"
	r.Prefill(&cfg)
	if cfg.User != "admin" {
		t.Errorf("a given user was replaced by %s", cfg.User)
	}
	r.Login = nil
	cfg = steps.DefaultConfig()
	r.Prefill(&cfg)
	if cfg.User != "opc" || cfg.Port != 22 {
		t.Errorf("without a login: %s:%d", cfg.User, cfg.Port)
	}
}

// TestHostAndPort: two machines behind one address on different ports keep
// their own receipts; a machine whose port moved with the install is found
// under either port, and its new receipt replaces the one under the old.
func TestHostAndPort(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	dir := filepath.Join(state, "bigbang", "hosts")
	a := sample()
	a.Port, a.HostKeyFingerprint = 2200, "SHA256:a"
	b := sample()
	b.Port, b.HostKeyFingerprint = 2201, "SHA256:b"
	for _, r := range []Receipt{a, b} {
		if _, err := Write(r); err != nil {
			t.Fatal(err)
		}
	}
	for port, want := range map[int]string{2200: "SHA256:a", 2201: "SHA256:b"} {
		if r, err := Read(a.Host, port); err != nil || r.HostKeyFingerprint != want {
			t.Errorf("port %d: %q %v, want %s", port, r.HostKeyFingerprint, err, want)
		}
	}
	// Two receipts, no port given: which machine is not guessed.
	if _, err := Read(a.Host, 22); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "2200, 2201") || !strings.Contains(err.Error(), "--port") {
		t.Errorf("ambiguous: %v", err)
	}
	// A backup of a third machine on port 22 is not filed with a or b.
	if err := AddBackup(a.Host, 22, Backup{Path: "/b/c.tar"}); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{2200, 2201} {
		if r, _ := Read(a.Host, port); len(r.Backups) != 0 {
			t.Errorf("port %d got the other machine's backup: %+v", port, r.Backups)
		}
	}
	if r, err := Read(a.Host, 22); err != nil || len(r.Backups) != 1 || r.Port != 22 {
		t.Errorf("port 22: %+v %v", r, err)
	}

	// The machine on 2200 is installed and answers on 2222 now: one
	// receipt, found under both ports, filed under the new one.
	a.Login = &Login{User: "root", Port: 2222}
	p, err := Write(a)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "203.0.113.7@2222.json" {
		t.Errorf("filed as %s", p)
	}
	if _, err := os.Stat(filepath.Join(dir, "203.0.113.7@2200.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the receipt under the old port is still there: %v", err)
	}
	for _, port := range []int{2200, 2222} {
		if r, err := Read(a.Host, port); err != nil || r.HostKeyFingerprint != "SHA256:a" {
			t.Errorf("port %d: %+v %v", port, r, err)
		}
	}
	if r, err := Read(a.Host, 2201); err != nil || r.HostKeyFingerprint != "SHA256:b" {
		t.Errorf("the other machine's receipt: %+v %v", r, err)
	}
}

// TestOnlyReceipt: with one receipt for the host, no port given (22) finds
// it, so `--host` alone prefills the port; another port does not.
func TestOnlyReceipt(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	r := sample()
	r.Port = 2222
	if _, err := Write(r); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(r.Host, 22); err != nil || got.Port != 2222 {
		t.Errorf("port 22: %+v %v", got, err)
	}
	if _, err := Read(r.Host, 2300); !errors.Is(err, ErrNotFound) {
		t.Errorf("port 2300: %v", err)
	}
}
