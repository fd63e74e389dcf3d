package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bigbang-nix/bigbang/steps"
)

// BenchmarkHangNoticed measures "hang noticed after": the time from the
// start of an endless loop (its first line) to the stall or failure event,
// with the loop printing all along. The limit is part of it by design; the
// figure beyond the limit is the watchdog's own delay.
//
//	go test -run '^$' -bench HangNoticed -benchtime 3x ./steps/runner/
func BenchmarkHangNoticed(b *testing.B) {
	bin := standin(b)
	phases := []steps.PhaseID{steps.PhaseConnect, steps.PhaseKexec, steps.PhaseDisko, steps.PhaseInstall, steps.PhaseReboot}
	for _, bc := range []struct {
		name  string
		argv  []string
		env   []string
		opts  Options
		start string // the loop's first line
		limit time.Duration
		done  func(steps.Event) bool
	}{
		{"reboot wait stall", []string{"-p", "2222", "opc@192.0.2.7"}, []string{"STANDIN_REBOOT=never"},
			Options{Stall: map[steps.PhaseID]time.Duration{steps.PhaseReboot: 2 * time.Second}, RebootDeadline: -1},
			"### Waiting for the machine to become unreachable due to reboot ###", 2 * time.Second,
			func(e steps.Event) bool { return e.Type == steps.EventStall }},
		{"reboot deadline", []string{"-p", "2222", "opc@192.0.2.7"}, []string{"STANDIN_REBOOT=never"},
			Options{RebootDeadline: 2 * time.Second},
			"### Rebooting ###", 2 * time.Second,
			func(e steps.Event) bool { return e.Type == steps.EventResult }},
		{"ssh-copy-id stall", []string{"--phases", "disko,install,reboot", "-p", "2222", "opc@192.0.2.7"}, []string{"STANDIN_CONNECT=refused"},
			Options{Stall: map[steps.PhaseID]time.Duration{steps.PhaseConnect: 4 * time.Second}},
			"### Uploading install SSH keys ###", 4 * time.Second,
			func(e steps.Event) bool { return e.Type == steps.EventStall }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var noticed []time.Duration
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				c := newCollector()
				opts := bc.opts
				opts.Argv = append([]string{bin, "--flake", ".#vps-arm", "--build-on", "remote"}, bc.argv...)
				opts.Env = standinEnv(bc.env...)
				opts.LogPath = filepath.Join(b.TempDir(), "run.log")
				opts.Phases = phases
				opts.DefaultStall = time.Minute
				opts.Grace = 500 * time.Millisecond
				done := runAsync(ctx, opts, c)
				deadline := time.After(30 * time.Second)
				var at time.Duration
			wait:
				for {
					evs := c.all()
					s := firstEvent(evs, isLine(bc.start))
					if e := firstEvent(evs, bc.done); s >= 0 && e >= 0 {
						at = evs[e].Time.Sub(evs[s].Time)
						break wait
					}
					select {
					case <-c.notify:
					case <-deadline:
						b.Fatalf("no end event: %v", c.all())
					}
				}
				cancel()
				<-done
				noticed = append(noticed, at)
			}
			slices.Sort(noticed)
			med := noticed[len(noticed)/2]
			b.ReportMetric(med.Seconds(), "s-noticed")
			b.ReportMetric((med-bc.limit).Seconds()*1000, "ms-beyond-limit")
			b.ReportMetric((noticed[len(noticed)-1]-bc.limit).Seconds()*1000, "ms-beyond-limit-max")
		})
	}
}

// BenchmarkProgressLag measures "progress lag": the time from the child's
// write of a '\r' status line to its progress event. The child (this test
// binary, see TestMain) writes its own clock into each state.
//
//	go test -run '^$' -bench ProgressLag -benchtime 3x ./steps/runner/
func BenchmarkProgressLag(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every time.Duration // between two states
	}{
		{"states 250ms apart", 250 * time.Millisecond},
		// Faster than ProgressEvery: a state may wait for the throttle.
		{"states 20ms apart", 20 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var lags []time.Duration
			for i := 0; i < b.N; i++ {
				var got []time.Duration
				sink := func(e steps.Event) {
					if e.Type != steps.EventProgress {
						return
					}
					_, ns, ok := strings.Cut(e.Text, "t=")
					if !ok {
						return
					}
					n, err := strconv.ParseInt(strings.Fields(ns)[0], 10, 64)
					if err == nil {
						got = append(got, time.Since(time.Unix(0, n)))
					}
				}
				_, err := Run(context.Background(), Options{
					Argv:    []string{os.Args[0], "-test.run=^$"},
					Env:     append(os.Environ(), "RUNNER_BENCH_CHILD=progress", "RUNNER_BENCH_EVERY="+bc.every.String()),
					LogPath: filepath.Join(b.TempDir(), "run.log"),
					Phases:  []steps.PhaseID{steps.PhaseBuild},
				}, sink)
				if err != nil || len(got) == 0 {
					b.Fatalf("no progress events: %v", err)
				}
				lags = append(lags, got...)
			}
			slices.Sort(lags)
			b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "ms-lag-p50")
			b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "ms-lag-p99")
			b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "ms-lag-max")
		})
	}
}

// benchChild is the child of BenchmarkProgressLag: 20 states of a nix-like
// status line, each carrying the time it was written, then a clear and a
// step line.
func benchChild() {
	every, _ := time.ParseDuration(os.Getenv("RUNNER_BENCH_EVERY"))
	for i := 0; i <= 20; i++ {
		fmt.Fprintf(os.Stderr, "\r[%d/20 built] t=%d\x1b[K", i, time.Now().UnixNano())
		time.Sleep(every)
	}
	fmt.Fprint(os.Stderr, "\r\x1b[K### Uploading install SSH keys ###\n")
}
