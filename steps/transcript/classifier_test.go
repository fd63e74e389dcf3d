package transcript

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// step is one line fed to the classifier and what it must answer.
type step struct {
	line    string
	phase   steps.PhaseID
	changes []Change
}

func ch(pairs ...string) []Change {
	var out []Change
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Change{steps.PhaseID(pairs[i]), steps.PhaseState(pairs[i+1])})
	}
	return out
}

func TestLineChanges(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"1.13.0 step lines", []step{
			{"copying path '/nix/store/abc-util-linux' from 'https://cache.nixos.org'...", build, ch("build", "running")},
			{"### Uploading install SSH keys ###", connect, ch("build", "done", "connect", "running")},
			{"### Gathering machine facts ###", connect, nil},
			{"### Switching system into kexec ###", kexec, ch("connect", "done", "kexec", "running")},
			{"machine will boot into nixos in 6s...", kexec, nil},
			{"### Gathering machine facts ###", kexec, nil},
			{"### Generating hardware-configuration.nix using nixos-generate-config ###", kexec, nil},
			{"### Uploading /tmp/disk.key to /tmp/secret.key ###", disko, ch("kexec", "done", "disko", "running")},
			{"### Building disko script ###", disko, nil},
			{"### Formatting hard drive with disko ###", disko, nil},
			{"### Uploading the system closure ###", install, ch("disko", "done", "install", "running")},
			{"copying path '/nix/store/abc-linux' to 'ssh://root@h'...", install, nil},
			{"### Copying extra files ###", keys, ch("keys", "running")},
			{"### Installing NixOS ###", install, ch("keys", "done")},
			{"installation finished!", install, nil},
			{"### Rebooting ###", reboot, ch("install", "done", "reboot", "running")},
			{"### Waiting for the machine to become unreachable due to reboot ###", reboot, nil},
			{"### Done! ###", reboot, ch("reboot", "done")},
		}},
		{"--debug trace lines are not steps", []step{
			{"### Uploading install SSH keys ###", connect, ch("connect", "running")},
			{"+ step Switching system into kexec", connect, nil},
			{"+ echo '### Switching system into kexec ###'", connect, nil},
			{"### Switching system into kexec ###", kexec, ch("connect", "done", "kexec", "running")},
			{"++ echo '### Formatting hard drive with disko ###'", kexec, nil},
			{"+ step Formatting hard drive with disko", kexec, nil},
		}},
		{"old wording and remote build", []step{
			{"### Gathering machine facts ###", connect, ch("connect", "running")},
			{"### Formatting hard drive with disko ###", disko, ch("connect", "done", "disko", "running")},
			{"### Building the system closure ###", install, ch("disko", "done", "install", "running")},
			{"### Installing NixOS ###", install, nil},
			{"### Waiting for the machine to become reachable again ###", reboot, ch("install", "done", "reboot", "running")},
			{"### Done! ###", reboot, ch("reboot", "done")},
		}},
		{"oldest misspelt wording", []step{
			{"### Installing NixOS ###", install, ch("install", "running")},
			{"### Waiting for the maching to become reachable again ###", reboot, ch("install", "done", "reboot", "running")},
		}},
		{"facter probe and keys without a running install", []step{
			{"### Generating facter.json using nixos-facter ###", kexec, ch("kexec", "running")},
			{"### Copying extra files ###", keys, ch("kexec", "done", "keys", "running")},
			{"### Installing NixOS ###", install, ch("keys", "done", "install", "running")},
		}},
		{"fragments placed by content", []step{
			{"$ nix run github:nix-community/nixos-anywhere -- --flake .#vps-arm opc@h", "", nil},
			{"/usr/bin/ssh-copy-id: INFO: Source of key(s) to be installed: \"/tmp/k.pub\"", connect, ch("connect", "running")},
			{"kexec/initrd", kexec, ch("connect", "done", "kexec", "running")},
			{"+ sgdisk --zap-all /dev/sda", disko, ch("kexec", "done", "disko", "running")},
			{"umount: /mnt: not mounted", disko, nil},
			{"+ rsync -rlpv ./keys/ root@h:/mnt/", keys, ch("disko", "done", "keys", "running")},
			{"installing the boot loader...", install, ch("keys", "done", "install", "running")},
			// Content never moves the stream back.
			{"+ mkfs.ext4 /dev/sda2", install, nil},
			{"installation finished!", install, nil},
			{"ssh: connect to host h port 22: Connection refused", reboot, ch("install", "done", "reboot", "running")},
		}},
		{"nix output after a step line is not the local build", []step{
			{"### Gathering machine facts ###", connect, ch("connect", "running")},
			{"copying path '/nix/store/abc-dns-root-data' from 'https://cache.nixos.org'...", connect, nil},
		}},
		{"an unknown step keeps the phase", []step{
			{"### Formatting hard drive with disko ###", disko, ch("disko", "running")},
			{"### Doing something new ###", disko, nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New()
			for i, s := range tt.steps {
				p, got := c.Line(s.line)
				if p != s.phase || !slices.Equal(got, s.changes) {
					t.Fatalf("line %d %q: got %q %v, want %q %v", i+1, s.line, p, got, s.phase, s.changes)
				}
			}
		})
	}
}

func feed(c *Classifier, text string) {
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		c.Line(l)
	}
}

func TestFinishExitCodes(t *testing.T) {
	partial := "### Uploading install SSH keys ###\n### Gathering machine facts ###\n### Switching system into kexec ###\nDownloading kexec tarball, this may take a moment...\n"
	success, err := os.ReadFile("testdata/steps-1.13.0.log")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		text    string
		exit    int
		outcome string
		failed  steps.PhaseID
		diag    string
		changes []Change
	}{
		{"success, exit 0", string(success), 0, OutcomeSuccess, "", "", nil},
		{"success, exit unknown", string(success), -1, OutcomeSuccess, "", "", nil},
		{"Done! but exit 1", string(success), 1, OutcomeFailed, reboot, "unknown", ch("reboot", "failed")},
		{"stopped, exit 1", partial, 1, OutcomeFailed, kexec, "unknown", ch("kexec", "failed")},
		{"stopped, exit 0", partial, 0, OutcomeSuccess, "", "", ch("kexec", "done")},
		{"stopped, exit unknown", partial, -1, OutcomeIncomplete, kexec, "incomplete", nil},
		{"stopped, interrupted", partial, 130, OutcomeFailed, kexec, "interrupted", ch("kexec", "failed")},
		{"kexec booted, never came back, exit 255", partial + "machine will boot into nixos in 6s...\n", 255, OutcomeFailed, kexec, "installer-no-network", ch("kexec", "failed")},
		{"rsync copy stopped, exit 1", "### Copying extra files ###\n+ rsync -rlpv ./k/ root@h:/mnt/\n", 1, OutcomeFailed, keys, "extra-files-rsync", ch("keys", "failed")},
		{"soft failure, exit 0", "### Uploading install SSH keys ###\nssh: connect to host h port 22: Connection refused\n", 0, OutcomeSuccess, "", "", ch("connect", "done")},
		{"soft failure, exit 1", "### Uploading install SSH keys ###\nssh: connect to host h port 22: Connection refused\n", 1, OutcomeFailed, connect, "target-unreachable", ch("connect", "failed")},
		{"installer came back in a fragment", "machine will boot into nixos in 6s...\nssh: connect to host h port 22: No route to host\n+ sgdisk --zap-all /dev/sda\n", -1, OutcomeIncomplete, disko, "incomplete", nil},
		{"nothing at all, exit 1", "", 1, OutcomeFailed, "", "unknown", nil},
		{"exit status recorded by bigbang", partial + "bigbang: exit status 1\n", -1, OutcomeFailed, kexec, "unknown", ch("kexec", "failed")},
		{"zero exit status recorded by bigbang", partial + "bigbang: exit status 0\n", -1, OutcomeSuccess, "", "", ch("kexec", "done")},
		{"the live exit status beats the record", partial + "bigbang: exit status 0\n", 1, OutcomeFailed, kexec, "unknown", ch("kexec", "failed")},
		{"interruption recorded by bigbang", partial + "bigbang: interrupted by the operator\n", -1, OutcomeFailed, kexec, "interrupted", ch("kexec", "failed")},
		{"an unknown record is a note", string(success) + "bigbang: something new: failed\n", -1, OutcomeSuccess, "", "", nil},
		{"unknown error, exit 2", partial + "tar: Error is not recoverable: exiting now\n", 2, OutcomeFailed, kexec, "unrecognised-error", ch("kexec", "failed")},
		{"unknown error, exit unknown", partial + "tar: Error is not recoverable: exiting now\n", -1, OutcomeFailed, kexec, "unrecognised-error", ch("kexec", "failed")},
		{"unknown error, then the run went on", partial + "tar: Error is not recoverable: exiting now\n### Formatting hard drive with disko ###\n", -1, OutcomeIncomplete, disko, "incomplete", nil},
		{"weak sign far from the end", partial + "curl: mirror request failed, retrying\nkexec/initrd\nkexec/run\nkexec/bzImage\nkexec/ip\n", -1, OutcomeIncomplete, kexec, "incomplete", nil},
		{"reboot verified without Done!", "### Installing NixOS ###\nbigbang: reboot verified: host key SHA256:abc\n", -1, OutcomeSuccess, "", "", ch("reboot", "done")},
		{"keys inside install, failed", "### Uploading the system closure ###\n### Copying extra files ###\n", 1, OutcomeFailed, keys, "unknown", ch("install", "failed", "keys", "failed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New()
			if tt.text != "" {
				feed(c, tt.text)
			}
			got, r := c.Finish(tt.exit)
			if r.Outcome != tt.outcome || r.FailedPhase != tt.failed || r.Diagnosis.ID != tt.diag {
				t.Errorf("got %q %q %q, want %q %q %q", r.Outcome, r.FailedPhase, r.Diagnosis.ID, tt.outcome, tt.failed, tt.diag)
			}
			if !slices.Equal(got, tt.changes) {
				t.Errorf("Finish changes %v, want %v", got, tt.changes)
			}
		})
	}
}

// TestChangesMatchReport: replaying the changes Line and Finish return gives
// the states of the report, and every span lies within the transcript; what
// the runner shows live and what explain says afterwards agree.
func TestChangesMatchReport(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.log")
	more, _ := filepath.Glob(filepath.Join(realLogs, "*.log"))
	files = append(files, more...)
	for _, f := range files {
		for _, exit := range []int{-1, 0, 1} {
			t.Run(fmt.Sprintf("%s/exit%d", filepath.Base(f), exit), func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				c := New()
				states := map[steps.PhaseID]steps.PhaseState{}
				lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
				for _, l := range lines {
					_, chs := c.Line(l)
					for _, x := range chs {
						states[x.Phase] = x.State
					}
				}
				chs, r := c.Finish(exit)
				for _, x := range chs {
					states[x.Phase] = x.State
				}
				for p, s := range states {
					// A phase the classifier took back (nix output at the
					// start of a fragment that was not a local build after
					// all) is skipped and is not in the report.
					if s == steps.StateSkipped {
						delete(states, p)
						if slices.ContainsFunc(r.Phases, func(sp Span) bool { return sp.ID == p }) {
							t.Errorf("%s taken back but still in the report", p)
						}
					}
				}
				if len(states) != len(r.Phases) {
					t.Errorf("changes name %d phases, report %d", len(states), len(r.Phases))
				}
				for _, s := range r.Phases {
					if states[s.ID] != s.State {
						t.Errorf("%s: changes say %q, report %q", s.ID, states[s.ID], s.State)
					}
					if s.FirstLine < 1 || s.FirstLine > s.LastLine || s.LastLine > len(lines) {
						t.Errorf("%s: bad span %d-%d of %d lines", s.ID, s.FirstLine, s.LastLine, len(lines))
					}
					if exit >= 0 && s.State == steps.StateRunning {
						t.Errorf("%s still running after the exit status is known", s.ID)
					}
				}
				if r.Lines != len(lines) {
					t.Errorf("report counts %d lines, want %d", r.Lines, len(lines))
				}
			})
		}
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain line", "plain line"},
		{"\x1b[1;32m### Done! ###\x1b[0m", "### Done! ###"},
		{"10%\r50%\r100% done", "100% done"},
		{"line with CRLF\r", "line with CRLF"},
		{"\x1b]0;window title\x07text", "text"},
		{"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"cut escape \x1b", "cut escape "},
		{"cut csi \x1b[12", "cut csi "},
		{"\x1b(Bcharset", "charset"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := New().clean(tt.in); got != tt.want {
				t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMatcher compares the automaton with strings.Contains on random text
// built from pieces of the needles, where overlaps and near misses abound.
func TestMatcher(t *testing.T) {
	needles := []string{"he", "she", "his", "hers", "kexec", "kexec/", "exec_load failed", "### ", "a", "Permission denied ("}
	m := newMatcher(needles)
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := append([]string{" ", "x", "\x00", "\xff", "ü"}, needles...)
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		for n := rng.IntN(12); n > 0; n-- {
			p := pieces[rng.IntN(len(pieces))]
			if len(p) > 1 && rng.IntN(3) == 0 {
				p = p[:rng.IntN(len(p))]
			}
			b.WriteString(p)
		}
		s := b.String()
		hits := m.scan(s)
		for j, n := range needles {
			if hits.has(j) != strings.Contains(s, n) {
				t.Fatalf("scan(%q): needle %q hit=%v, Contains=%v", s, n, hits.has(j), strings.Contains(s, n))
			}
		}
	}
	// The compiled catalogue agrees with Contains on every fixture line.
	files, _ := filepath.Glob("testdata/*.log")
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(data), "\n") {
			hits := cat.m.scan(l)
			for n, j := range cat.index {
				if hits.has(j) != strings.Contains(l, n) {
					t.Fatalf("%s: %q: needle %q hit=%v", f, l, n, hits.has(j))
				}
			}
		}
	}
}
