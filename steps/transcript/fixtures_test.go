package transcript

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// want is the expected classification of a transcript. phases, when set,
// is the timeline as "id:state" words in start order.
type want struct {
	outcome string
	failed  steps.PhaseID
	diag    string
	phases  string
}

const fullRun = "connect:done kexec:done disko:done install:done keys:done reboot:done"

// fixtures are the transcripts in testdata: every step line in the 1.13.0
// and the older wordings, with and without --debug, and every known failure.
var fixtures = map[string]want{
	"steps-1.13.0":                    {OutcomeSuccess, "", "", "build:done " + fullRun},
	"steps-1.13.0-debug":              {OutcomeSuccess, "", "", fullRun},
	"steps-old-wording":               {OutcomeSuccess, "", "", fullRun},
	"steps-old-maching":               {OutcomeSuccess, "", "", "connect:done disko:done install:done reboot:done"},
	"steps-facter-resume":             {OutcomeSuccess, "", "", "connect:done kexec:done disko:done install:done reboot:done"},
	"cross-build-harmless":            {OutcomeSuccess, "", "", "build:done connect:done kexec:done disko:done install:done reboot:done"},
	"installer-came-back":             {OutcomeSuccess, "", "", fullRun},
	"ansi-cr":                         {OutcomeFailed, connect, "sudo-password", "connect:failed"},
	"sudo-password":                   {OutcomeFailed, connect, "sudo-password", "connect:failed"},
	"too-many-auth":                   {OutcomeFailed, connect, "too-many-auth", "connect:failed"},
	"key-mode":                        {OutcomeFailed, connect, "key-mode", "connect:failed"},
	"keys-skipped":                    {OutcomeFailed, kexec, "keys-skipped", "connect:done kexec:failed"},
	"authorized-keys-readonly":        {OutcomeFailed, connect, "authorized-keys-readonly", "connect:failed"},
	"login-denied":                    {OutcomeFailed, connect, "login-denied", "connect:failed"},
	"target-unreachable":              {OutcomeFailed, connect, "target-unreachable", "connect:failed"},
	"target-unreachable-dns":          {OutcomeFailed, connect, "target-unreachable", "connect:failed"},
	"facts-failed":                    {OutcomeFailed, connect, "facts-failed", "connect:failed"},
	"target-missing-tools":            {OutcomeFailed, connect, "target-missing-tools", "connect:failed"},
	"unsupported-target":              {OutcomeFailed, connect, "unsupported-target", "connect:failed"},
	"ssh-controlmaster-hang":          {OutcomeIncomplete, "connect", "ssh-controlmaster-hang", "connect:running"},
	"cross-build":                     {OutcomeFailed, build, "cross-build", "build:failed"},
	"flake-attribute":                 {OutcomeFailed, build, "flake-attribute", "build:failed"},
	"nix-build-failed":                {OutcomeFailed, build, "nix-build-failed", "build:failed"},
	"kexec-oom":                       {OutcomeFailed, kexec, "kexec-oom", "connect:done kexec:failed"},
	"kexec-initrd":                    {OutcomeFailed, kexec, "kexec-oom", "kexec:failed"},
	"kexec-no-room":                   {OutcomeFailed, kexec, "kexec-no-room", "kexec:failed"},
	"kexec-no-space":                  {OutcomeFailed, kexec, "kexec-no-space", "connect:done kexec:failed"},
	"secure-boot":                     {OutcomeFailed, kexec, "secure-boot", "connect:done kexec:failed"},
	"secure-boot-key-rejected":        {OutcomeFailed, kexec, "secure-boot", "kexec:failed"},
	"kexec-busy":                      {OutcomeFailed, kexec, "kexec-busy", "kexec:failed"},
	"installer-no-network":            {OutcomeFailed, kexec, "installer-no-network", "connect:done kexec:failed"},
	"kexec-failed":                    {OutcomeFailed, kexec, "kexec-failed", "connect:done kexec:failed"},
	"root-permission-denied":          {OutcomeFailed, kexec, "root-permission-denied", "connect:done kexec:failed"},
	"disko-layout":                    {OutcomeFailed, disko, "disko-layout", "connect:done kexec:done disko:failed"},
	"disk-busy":                       {OutcomeFailed, disko, "disk-busy", "disko:failed"},
	"disko-tool-crash":                {OutcomeFailed, disko, "disko-tool-crash", "disko:failed"},
	"extra-files-rsync":               {OutcomeFailed, keys, "extra-files-rsync", "keys:failed"},
	"extra-files-copy":                {OutcomeFailed, keys, "extra-files-copy", "install:failed keys:failed"},
	"boot-loader":                     {OutcomeFailed, install, "boot-loader", "connect:done kexec:done disko:done install:failed keys:done reboot:done"},
	"boot-loader-not-bootable":        {OutcomeFailed, install, "boot-loader", "install:failed reboot:done"},
	"sops-decrypt":                    {OutcomeFailed, install, "sops-decrypt", "install:failed reboot:done"},
	"activation-failed":               {OutcomeFailed, install, "activation-failed", "install:failed reboot:done"},
	"switch-to-configuration-missing": {OutcomeFailed, install, "switch-to-configuration-missing", "install:failed"},
	"install-no-space":                {OutcomeFailed, install, "install-no-space", "install:failed"},
	"install-oom":                     {OutcomeFailed, install, "install-oom", "install:failed"},
	"connection-lost":                 {OutcomeFailed, install, "connection-lost", "install:failed"},
	"reboot-never":                    {OutcomeIncomplete, "reboot", "reboot-never", "install:done reboot:running"},
	"aborted":                         {OutcomeFailed, "", "aborted", ""},
	"interrupted":                     {OutcomeFailed, disko, "interrupted", "disko:failed"},
	"incomplete":                      {OutcomeIncomplete, "kexec", "incomplete", "connect:done kexec:running"},
	// Classes found in real transcripts of the issue tracker, in our own
	// words: a rule that weighs other facts, phases placed by commands,
	// errors no rule knows, and bigbang's own records.
	"nix-untrusted-path":        {OutcomeFailed, disko, "nix-untrusted-path", "connect:done disko:failed"},
	"kexec-old-kernel":          {OutcomeFailed, kexec, "kexec-old-kernel", "kexec:failed"},
	"secure-boot-lockdown":      {OutcomeFailed, kexec, "secure-boot", "kexec:failed"},
	"kexec-invalid-argument":    {OutcomeFailed, kexec, "kexec-no-room", "kexec:failed"},
	"nixos-anywhere-script":     {OutcomeFailed, connect, "nixos-anywhere-script", "connect:failed"},
	"generic-nix-error":         {OutcomeFailed, install, "unrecognised-error", "connect:done kexec:done disko:done install:failed"},
	"generic-bash-error":        {OutcomeFailed, disko, "unrecognised-error", "disko:failed"},
	"generic-permission-denied": {OutcomeFailed, kexec, "unrecognised-error", "connect:done kexec:failed"},
	"generic-killed-build":      {OutcomeFailed, build, "unrecognised-error", "build:failed"},
	"generic-exit-trace":        {OutcomeFailed, disko, "unrecognised-error", "disko:failed"},
	"slow-copy":                 {OutcomeIncomplete, install, "incomplete", "connect:done kexec:done disko:done install:running"},
	"controlmaster-copy":        {OutcomeFailed, install, "ssh-controlmaster-hang", "disko:done install:failed"},
	"installer-low-memory":      {OutcomeFailed, disko, "installer-low-memory", "connect:done kexec:done disko:failed"},
	"disko-deps-fragment":       {OutcomeFailed, disko, "disko-layout", "disko:failed"},
	"bigbang-exit-generic":      {OutcomeFailed, disko, "unrecognised-error", "connect:done kexec:done disko:failed"},
	"bigbang-exit-silent":       {OutcomeFailed, disko, "unknown", "connect:done kexec:done disko:failed"},
	"bigbang-interrupted":       {OutcomeFailed, install, "interrupted", "install:failed"},
	"bigbang-reboot-verify":     {OutcomeFailed, reboot, "reboot.verify", "install:done reboot:failed"},
	"bigbang-reboot-unverified": {OutcomeFailed, reboot, "reboot.unverified", "install:done reboot:failed"},
	"bigbang-reboot-timeout":    {OutcomeFailed, reboot, "reboot.timeout", "install:done reboot:failed"},
	"bigbang-reboot-verified":   {OutcomeSuccess, "", "", "install:done reboot:done"},
}

func timeline(r Report) string {
	var w []string
	for _, s := range r.Phases {
		w = append(w, string(s.ID)+":"+string(s.State))
	}
	return strings.Join(w, " ")
}

func explainFile(t testing.TB, path string) Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Explain(f)
	if err != nil {
		t.Fatalf("Explain(%s): %v", path, err)
	}
	return r
}

func checkReport(t *testing.T, r Report, w want) {
	t.Helper()
	if r.Outcome != w.outcome || r.FailedPhase != w.failed || r.Diagnosis.ID != w.diag {
		t.Errorf("got outcome %q, failed phase %q, diagnosis %q; want %q, %q, %q (evidence line %d: %v)",
			r.Outcome, r.FailedPhase, r.Diagnosis.ID, w.outcome, w.failed, w.diag, r.EvidenceLine, r.Evidence)
	}
	if got := timeline(r); got != w.phases {
		t.Errorf("timeline %q, want %q", got, w.phases)
	}
}

func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.log")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".log")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			w, ok := fixtures[name]
			if !ok {
				t.Fatalf("testdata/%s.log has no expectation in the fixtures table", name)
			}
			checkReport(t, explainFile(t, f), w)
		})
	}
	for name := range fixtures {
		if !seen[name] {
			t.Errorf("fixtures table names %s but testdata/%s.log is missing", name, name)
		}
	}
}

// TestCatalogueCovered: every diagnosis is reachable from some transcript,
// and every ID a rule names exists in the catalogue.
func TestCatalogueCovered(t *testing.T) {
	ids := map[string]bool{}
	for _, d := range Diagnoses() {
		if ids[d.ID] {
			t.Errorf("diagnosis %s listed twice", d.ID)
		}
		ids[d.ID] = true
		if d.Summary == "" || d.Remedy == "" {
			t.Errorf("diagnosis %s lacks a summary or a remedy", d.ID)
		}
	}
	for _, r := range rules {
		if !ids[r.diag] {
			t.Errorf("rule %v names unknown diagnosis %s", r.all, r.diag)
		}
	}
	covered := map[string]bool{"unknown": true} // TestFinishExitCodes
	for _, w := range fixtures {
		covered[w.diag] = true
	}
	for id := range ids {
		if !covered[id] {
			t.Errorf("diagnosis %s has no fixture", id)
		}
	}
	// The rows of the known-failures table in NIXOS-ANYWHERE.md and the
	// failures of the shared transcripts, by the IDs they are known as.
	for _, id := range []string{"sudo-password", "too-many-auth", "key-mode", "keys-skipped",
		"root-permission-denied", "ssh-controlmaster-hang", "kexec-oom", "secure-boot",
		"installer-no-network", "reboot-never", "cross-build", "disko-layout", "disk-busy",
		"boot-loader", "sops-decrypt", "authorized-keys-readonly", "switch-to-configuration-missing",
		"extra-files-rsync", "kexec-busy", "unknown"} {
		if !ids[id] {
			t.Errorf("catalogue lacks %s", id)
		}
	}
}

// TestFailureBeforeDone: failures nixos-anywhere does not stop for are
// printed before "installation finished!" and "Done!"; the outcome must
// still be failed, whether the exit status is unknown or even 0.
func TestFailureBeforeDone(t *testing.T) {
	for _, name := range []string{"boot-loader", "boot-loader-not-bootable", "sops-decrypt", "activation-failed"} {
		for _, exit := range []int{-1, 0} {
			t.Run(name, func(t *testing.T) {
				data, err := os.ReadFile("testdata/" + name + ".log")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(data), "### Done! ###") {
					t.Fatalf("fixture %s must end with Done!", name)
				}
				c := New()
				for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
					c.Line(l)
				}
				ch, r := c.Finish(exit)
				if r.Outcome != OutcomeFailed || r.FailedPhase != install {
					t.Fatalf("exit %d: outcome %q in %q, want failed in install", exit, r.Outcome, r.FailedPhase)
				}
				if !slices.Contains(ch, Change{install, steps.StateFailed}) {
					t.Errorf("exit %d: Finish changes %v lack install failed", exit, ch)
				}
			})
		}
	}
}

// TestEvidenceLines: every evidence line of every fixture and real
// transcript points at the line it quotes, says why it counts, and the
// failure line of a failed run is among them.
func TestEvidenceLines(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.log")
	real, _ := filepath.Glob(filepath.Join(realLogs, "*.log"))
	for _, f := range append(files, real...) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			r := explainFile(t, f)
			for _, e := range r.Evidence {
				if e.Line < 1 || e.Line > len(lines) {
					t.Fatalf("evidence line %d outside the %d lines", e.Line, len(lines))
				}
				src := strings.TrimSpace(New().clean(lines[e.Line-1]))
				if !strings.HasPrefix(src, e.Text) || e.Text == "" || e.Why == "" {
					t.Errorf("evidence line %d is %q (%s), the transcript has %q", e.Line, e.Text, e.Why, src)
				}
			}
			if r.EvidenceLine > 0 && !slices.ContainsFunc(r.Evidence, func(e Evidence) bool { return e.Line == r.EvidenceLine }) {
				t.Errorf("failure line %d is not in the evidence %v", r.EvidenceLine, r.Evidence)
			}
			if r.Outcome == OutcomeFailed && r.Diagnosis.ID != "unknown" && len(r.Evidence) == 0 {
				t.Errorf("failed (%s) without evidence", r.Diagnosis.ID)
			}
		})
	}
}

// TestEvidenceNamesTheLine: the evidence of a few fixtures names exactly
// the lines that decide them, including the facts a diagnosis weighed.
func TestEvidenceNamesTheLine(t *testing.T) {
	tests := []struct {
		name  string
		lines []int
	}{
		{"kexec-old-kernel", []int{1, 8, 9, 11, 14}},
		{"secure-boot-lockdown", []int{1, 6, 7, 8, 11}},
		{"generic-nix-error", []int{7, 9}},
		{"installer-low-memory", []int{6, 8}},
		{"bigbang-exit-silent", []int{6, 7}},
		{"bigbang-reboot-verify", []int{4, 7, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := explainFile(t, "testdata/"+tt.name+".log")
			var got []int
			for _, e := range r.Evidence {
				got = append(got, e.Line)
			}
			if !slices.Equal(got, tt.lines) {
				t.Errorf("evidence lines %v, want %v: %v", got, tt.lines, r.Evidence)
			}
		})
	}
}
