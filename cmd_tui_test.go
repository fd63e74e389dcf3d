package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/local"
	"github.com/bigbang-nix/bigbang/steps/receipt"
)

func receiptPathFor(host string) (string, error) { return receipt.Path(host) }

// TestLocalBuild covers the RAM screen's "can this machine build it":
// natively, through binfmt emulation with extra-platforms, or not, and why.
func TestLocalBuild(t *testing.T) {
	binfmt := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(binfmt, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("register", "")
	write("status", "enabled\n")
	write("qemu-aarch64", "enabled\ninterpreter /usr/bin/qemu-aarch64-static\n")
	write("qemu-riscv64", "disabled\ninterpreter /usr/bin/qemu-riscv64-static\n")
	okBuild := []steps.Check{{ID: local.IDBuild, Status: steps.StatusOK}}
	warnBuild := []steps.Check{{ID: local.IDBuild, Status: steps.StatusWarn}}
	tests := []struct {
		name, target, buildOn string
		checks                []steps.Check
		want                  bool
		note                  string
	}{
		{"native", "x86_64-linux", "auto", nil, true, "this machine is x86_64-linux too"},
		{"binfmt and extra-platforms", "aarch64-linux", "auto", okBuild, true, "binfmt emulation (qemu-aarch64) and extra-platforms"},
		{"binfmt without extra-platforms", "aarch64-linux", "auto", warnBuild, false, "nix.conf lacks extra-platforms = aarch64-linux"},
		{"remote: the check says nothing", "aarch64-linux", "remote", okBuild, false, "nix.conf lacks"},
		{"disabled entry", "riscv64-linux", "auto", warnBuild, false, "no binfmt emulation for riscv64"},
		{"unknown target", "", "auto", okBuild, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, note := localBuild("x86_64-linux", tc.target, tc.buildOn, tc.checks, binfmt)
			if got != tc.want || !strings.Contains(note, tc.note) || (tc.note == "" && note != "") {
				t.Errorf("localBuild = %v, %q; want %v and a note with %q", got, note, tc.want, tc.note)
			}
		})
	}
}

// TestTargetDefaultsFromReceipt prefills the wizard's form from the last
// install of the host and says so.
func TestTargetDefaultsFromReceipt(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	dir := filepath.Join(state, "bigbang", "hosts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := steps.DefaultConfig()
	cfg.Host = "198.51.100.4"
	if notes := targetDefaults(t.Context(), &cfg); len(notes) != 0 || cfg.User != "opc" {
		t.Fatalf("without a receipt: notes %q, user %q", notes, cfg.User)
	}
	rec := `{"version":1,"host":"198.51.100.4","user":"ubuntu","port":2222,"flake":".#other","installed_at":"2026-01-02T03:04:05Z"}`
	p, err := receiptPathFor(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	notes := targetDefaults(t.Context(), &cfg)
	if cfg.User != "ubuntu" || cfg.Port != 2222 || cfg.Flake != ".#other" {
		t.Errorf("config not prefilled: %+v", cfg)
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "last install of 198.51.100.4") {
		t.Errorf("notes %q", notes)
	}
}
