package transcript

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// realLogs is the folder of real nixos-anywhere transcripts copied into
// the repository (with a source note beside each), so that a fresh clone
// tests itself.
const realLogs = "../../testdata/logs"

// readmeRow is one row of the table in testdata/logs/README.md.
type readmeRow struct {
	outcome string        // success, failed or unknown
	phase   steps.PhaseID // where it failed, or the last phase seen
}

var rowRE = regexp.MustCompile(`^\|\s*(\d+)\s*\|\s*(\w+)\s*\|\s*([^|]*?)\s*\|`)

func readREADME(t *testing.T, dir string) map[string]readmeRow {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]readmeRow{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := rowRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		row := readmeRow{outcome: m[2]}
		if p := strings.Fields(m[3]); len(p) > 0 && p[0] != "-" {
			row.phase = steps.PhaseID(p[0])
		}
		rows[m[1]] = row
	}
	return rows
}

// logDiagnoses is the diagnosis each failed shared transcript must get.
var logDiagnoses = map[string]string{
	"07": "disko-layout",
	"09": "authorized-keys-readonly",
	"11": "key-mode",
	"12": "kexec-busy",
	"15": "installer-no-network",
	"17": "disk-busy",
	"18": "disko-tool-crash",
	"21": "boot-loader",
	"23": "switch-to-configuration-missing",
}

// cutBeforeError: 14 and 20 are failed runs whose error lines are not in
// the saved fragment (their .meta says so). From the text alone they are
// incomplete, stopped in the phase the README names; replayed with the exit
// status the run had, they are failed there, with this diagnosis.
var cutBeforeError = map[string]string{"14": "unknown", "20": "extra-files-rsync"}

func TestSharedLogs(t *testing.T) {
	dir := realLogs
	rows := readREADME(t, dir)
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s", dir)
	}
	if len(rows) != len(files) {
		t.Errorf("README lists %d transcripts, folder has %d", len(rows), len(files))
	}
	for _, f := range files {
		if _, err := os.Stat(strings.TrimSuffix(f, ".log") + ".meta"); err != nil {
			t.Errorf("%s has no source note beside it: %v", f, err)
		}
	}
	for _, f := range files {
		num := strings.SplitN(filepath.Base(f), "-", 2)[0]
		t.Run(filepath.Base(f), func(t *testing.T) {
			row, ok := rows[num]
			if !ok {
				t.Fatalf("README has no row for %s", num)
			}
			r := explainFile(t, f)
			last := steps.PhaseID("")
			if n := len(r.Phases); n > 0 {
				last = r.Phases[n-1].ID
			}
			switch {
			case row.outcome == "success":
				if r.Outcome != OutcomeSuccess || r.FailedPhase != "" {
					t.Errorf("got %s in %q, want success", r.Outcome, r.FailedPhase)
				}
				if last != reboot {
					t.Errorf("a successful run ends in %q, want reboot", last)
				}
			case row.outcome == "unknown" || cutBeforeError[num] != "":
				if r.Outcome != OutcomeIncomplete || r.FailedPhase != row.phase || last != row.phase {
					t.Errorf("got %s in %q (last phase %q), want incomplete, stopped in %q", r.Outcome, r.FailedPhase, last, row.phase)
				}
				if diag, ok := cutBeforeError[num]; ok {
					// Replay with the exit status the reporter saw.
					c := New()
					data, _ := os.ReadFile(f)
					feed(c, string(data))
					_, r := c.Finish(1)
					if r.Outcome != OutcomeFailed || r.FailedPhase != row.phase || r.Diagnosis.ID != diag {
						t.Errorf("with exit 1: got %s in %q (%s), want failed in %q (%s)", r.Outcome, r.FailedPhase, r.Diagnosis.ID, row.phase, diag)
					}
				}
			default:
				want := logDiagnoses[num]
				if r.Outcome != OutcomeFailed || r.FailedPhase != row.phase || r.Diagnosis.ID != want {
					t.Errorf("got %s in %q (%s, line %d %v), want failed in %q (%s)",
						r.Outcome, r.FailedPhase, r.Diagnosis.ID, r.EvidenceLine, r.Evidence, row.phase, want)
				}
				if r.EvidenceLine == 0 {
					t.Errorf("a failure found in the text names no evidence line")
				}
			}
		})
	}
}
