package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/internal/testhost"
)

func TestDriftCommand(t *testing.T) {
	dev := driftLoopDisk(t)
	dir := writeFlakeDir(t, strings.ReplaceAll(driftCmdFlake, "@DEVICE@", dev))
	h, kh := startTestHost(t, testhost.Options{})
	common := []string{"drift", "--host", h.IP, "--port", h.PortString(), "--user", h.User, "-i", h.ClientKey, "--known-hosts", kh}

	type driftJSON struct {
		Drift struct {
			Verdict string `json:"verdict"`
			Changes []struct {
				Kind, What, Live, Flake string
			} `json:"changes"`
		} `json:"drift"`
	}
	tests := []struct {
		name     string
		config   string
		output   string
		code     int
		verdict  string
		contains string
	}{
		{"same layout, json", "same", "json", 0, "none", ""},
		{"bigger ESP, json", "bigger-esp", "json", 1, "reinstall", "partition disk-main-ESP (" + dev + "p1) size"},
		{"same layout, plain", "same", "plain", 0, "", "no layout change: deploy with `nh os switch` / `nixos-rebuild`, no reinstall"},
		{"bigger ESP, plain", "bigger-esp", "plain", 1, "", "reinstall required because partition disk-main-ESP (" + dev + "p1) size changes from 32.0 MiB to 64.0 MiB (64M)"},
		{"no disko", "no-disko", "plain", 1, "", "has no disko layout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runRoot(context.Background(), "", append(common, "--flake", dir+"#"+tt.config, "--output", tt.output)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if tt.verdict != "" {
				var j driftJSON
				if err := json.Unmarshal([]byte(out), &j); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out)
				}
				if j.Drift.Verdict != tt.verdict || j.Drift.Changes == nil {
					t.Fatalf("verdict %q (changes %v), want %q", j.Drift.Verdict, j.Drift.Changes, tt.verdict)
				}
			}
			if !strings.Contains(out+errOut, tt.contains) {
				t.Fatalf("output lacks %q:\n%s\n%s", tt.contains, out, errOut)
			}
		})
	}
}
