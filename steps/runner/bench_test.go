package runner

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/transcript"
	"github.com/bigbang-nix/bigbang/ui/textout"
)

// BenchmarkRunFlood runs the stand-in flooding 100,000 lines under the
// terminal, through the classifier into the plain renderer.
func BenchmarkRunFlood(b *testing.B) {
	bin := standin(b)
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		res, err := Run(context.Background(), Options{
			Argv:    []string{bin, "--flake", ".#vps-arm", "--build-on", "remote", "opc@192.0.2.7"},
			Env:     standinEnv("STANDIN_FLOOD=100000"),
			LogPath: filepath.Join(dir, "run-"+strconv.Itoa(i)+".log"),
			Phases:  []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseReboot},
		}, textout.Plain(io.Discard))
		if err != nil || res.Outcome != steps.OutcomeSuccess {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

// BenchmarkLines measures the work per line after the terminal: splitting,
// cleaning, classifying and rendering (no child, no log).
func BenchmarkLines(b *testing.B) {
	var chunk bytes.Buffer
	for i := 0; i < 1000; i++ {
		chunk.WriteString("copying path '/nix/store/0c4iz1d0pk8s8wpx6y0w5fhb7a5n8qr1-package-")
		chunk.WriteString(strconv.Itoa(i))
		chunk.WriteString("-1.2.3' to 'ssh://root@192.0.2.7'...\r\n")
	}
	r := newRun(Options{Phases: []steps.PhaseID{steps.PhaseInstall}, Classifier: transcript.New()}, textout.Plain(io.Discard), timeNow())
	sp := &splitter{max: DefaultMaxLine, emit: func(l []byte) { r.line(l, timeNow()) }}
	b.SetBytes(int64(chunk.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sp.write(chunk.Bytes())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/line")
}

func timeNow() time.Time { return time.Now() }
