package transcript

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bigbang-nix/bigbang/steps"
)

// FuzzClassifier feeds arbitrary bytes to Explain and, line by line, to a
// live classifier; neither may panic, and the report must stay coherent.
// Seeded with every fixture and every real transcript.
func FuzzClassifier(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	real, _ := filepath.Glob(filepath.Join(realLogs, "*.log"))
	if len(real) == 0 {
		f.Fatalf("no real transcripts in %s", realLogs)
	}
	files = append(files, real...)
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, int8(-1))
	}
	f.Add([]byte("### ###\n###  ###\n#### Done! ####\n\x1b[\r\r\n"), int8(1))
	f.Add([]byte("### Done! ###\nbigbang: exit status 7\nbigbang: reboot failed: reboot.x: gone\nbigbang: reboot failed: Bad ID: x\n"), int8(-1))
	f.Add([]byte("copying path 'x' from 'y'\n+ sgdisk\nbigbang: interrupted by the operator\nbigbang: exit status -3\n"), int8(-1))
	ids := map[string]bool{"": true}
	for _, d := range Diagnoses() {
		ids[d.ID] = true
	}
	f.Fuzz(func(t *testing.T, data []byte, exit int8) {
		// bigbang's own "reboot failed: <id>: …" records name their own
		// diagnosis IDs.
		ids := maps.Clone(ids)
		for _, l := range strings.Split(string(data), "\n") {
			if _, rest, ok := strings.Cut(l, "bigbang: reboot failed: "); ok {
				id, _, _ := strings.Cut(rest, ": ")
				ids[strings.TrimSpace(id)] = true
			}
		}
		r, err := Explain(bytes.NewReader(data))
		if err == nil {
			checkCoherent(t, r, ids)
		}
		c := New()
		for _, l := range strings.Split(string(data), "\n") {
			p, _ := c.Line(l)
			if p != "" && !p.Valid() {
				t.Fatalf("Line returned invalid phase %q", p)
			}
		}
		_, r = c.Finish(int(exit))
		checkCoherent(t, r, ids)
		if exit > 0 && r.Outcome != OutcomeFailed {
			t.Fatalf("exit %d gave outcome %q", exit, r.Outcome)
		}
	})
}

func checkCoherent(t *testing.T, r Report, ids map[string]bool) {
	t.Helper()
	switch r.Outcome {
	case OutcomeSuccess, OutcomeFailed, OutcomeIncomplete:
	default:
		t.Fatalf("outcome %q", r.Outcome)
	}
	if !ids[r.Diagnosis.ID] || (r.Outcome != OutcomeSuccess) != (r.Diagnosis.ID != "") {
		t.Fatalf("outcome %q with diagnosis %q", r.Outcome, r.Diagnosis.ID)
	}
	// failed_phase names where a failed run failed, or where an incomplete
	// transcript stops; a success has none.
	if r.FailedPhase != "" && (!r.FailedPhase.Valid() || r.Outcome == OutcomeSuccess) {
		t.Fatalf("failed phase %q with outcome %q", r.FailedPhase, r.Outcome)
	}
	for _, e := range r.Evidence {
		if e.Line < 1 || e.Line > r.Lines || e.Why == "" {
			t.Fatalf("bad evidence %+v of %d lines", e, r.Lines)
		}
	}
	for _, s := range r.Phases {
		if !s.ID.Valid() || s.FirstLine < 1 || s.FirstLine > s.LastLine || s.LastLine > r.Lines {
			t.Fatalf("bad span %+v of %d lines", s, r.Lines)
		}
		switch s.State {
		case steps.StateRunning, steps.StateDone, steps.StateFailed:
		default:
			t.Fatalf("span state %q", s.State)
		}
	}
}
