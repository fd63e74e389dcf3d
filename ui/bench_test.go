package ui

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
)

// fullProgress is the progress screen at its busiest: every phase has a
// full ring of coloured lines with carriage-return progress, one runs.
func fullProgress(b *testing.B) *model {
	m := newModel(context.Background(), Options{Config: steps.DefaultConfig(), Engine: fakeBackend{}, Rehearsal: true})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	m.screen = screenProgress
	m.progress = newProgressScreen(steps.PhaseOrder, t0)
	m.now = t0.Add(5 * time.Minute)
	for i, id := range steps.PhaseOrder {
		m.progress.apply(steps.Event{Time: t0, Type: steps.EventPhase, Phase: id, State: steps.StateRunning})
		for j := 0; j < paneRing; j++ {
			m.progress.apply(steps.Event{Time: t0, Type: steps.EventLine, Phase: id,
				Text: fmt.Sprintf("\x1b[34m[%d/612 built]\x1b[0m copying path /nix/store/%04d-glibc\r\x1b[34m[%d/612 built]\x1b[0m fetching %d", j, j, j+1, i)})
		}
		if i < len(steps.PhaseOrder)-2 {
			m.progress.apply(steps.Event{Time: t0.Add(time.Minute), Type: steps.EventPhase, Phase: id, State: steps.StateDone})
		}
	}
	return m
}

// BenchmarkProgressView renders the progress screen at 120×40 with a new
// line in the running pane before every frame (the worst case: the tail is
// re-rendered through the emulator each time).
func BenchmarkProgressView(b *testing.B) {
	m := fullProgress(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.progress.apply(steps.Event{Time: t0, Type: steps.EventLine, Phase: steps.PhaseKeys, Text: "\x1b[32mline\x1b[0m " + itoa(i)})
		_ = m.View()
	}
}

// rusageThread is Linux's RUSAGE_THREAD: the calling thread's CPU time.
const rusageThread = 1

// countingModel counts frames and measures how long a key takes to reach
// Update while output floods in.
type countingModel struct {
	*model
	frames  *atomic.Int64
	keySent *atomic.Int64
	keyLat  *latencies
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (c countingModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok && k.Code == 'z' {
		sent := time.Unix(0, c.keySent.Load())
		c.keyLat.mu.Lock()
		c.keyLat.d = append(c.keyLat.d, time.Since(sent))
		c.keyLat.mu.Unlock()
		return c, nil
	}
	_, cmd := c.model.Update(msg)
	return c, cmd
}

func (c countingModel) View() tea.View {
	c.frames.Add(1)
	return c.model.View()
}

// BenchmarkThroughput feeds 20,000 lines per second for b.N seconds through
// the event queue into a running program (output discarded) and reports
// CPU use, frames per second, key latency and memory. %cpu is the whole
// process; %cpu-loadgen the goroutine that makes and pushes the lines (its
// own thread's time); %cpu-ui the rest: the queue's consumer, Update, View
// and Bubble Tea's renderer, with the garbage collector.
func BenchmarkThroughput(b *testing.B) {
	const rate = 20000
	m := newModel(context.Background(), Options{Config: steps.DefaultConfig(), Engine: fakeBackend{}})
	m.width, m.height = 120, 40
	m.screen = screenProgress
	m.progress = newProgressScreen(steps.PhaseOrder, time.Now())
	m.progress.apply(steps.Event{Type: steps.EventPhase, Phase: steps.PhaseInstall, State: steps.StateRunning})
	cm := countingModel{model: m, frames: new(atomic.Int64), keySent: new(atomic.Int64), keyLat: &latencies{}}
	pr, pw := io.Pipe()
	defer pw.Close()
	p := tea.NewProgram(cm, tea.WithInput(pr), tea.WithOutput(io.Discard), tea.WithoutSignals(), tea.WithWindowSize(120, 40))
	done := make(chan struct{})
	go func() { _, _ = p.Run(); close(done) }()
	time.Sleep(200 * time.Millisecond)

	// The load generator runs on this goroutine, locked to its thread, so
	// that its own CPU time can be told apart from bigbang's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ru0, ru1, gen0, gen1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	_ = syscall.Getrusage(rusageThread, &gen0)
	f0 := cm.frames.Load()
	start := time.Now()
	b.ResetTimer()
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	for sec := 0; sec < b.N; sec++ {
		end := start.Add(time.Duration(sec+1) * time.Second)
		for time.Now().Before(end) {
			<-tick.C
			want := int(time.Since(start).Seconds() * rate)
			for ; sent < want; sent++ {
				m.queue.push(steps.Event{Type: steps.EventLine, Phase: steps.PhaseInstall, Text: "\x1b[34m[123/612 built]\x1b[0m copying path '/nix/store/abcd-glibc-2.40' from 'https://cache.nixos.org'... " + itoa(sent)})
			}
			if sent%2000 < rate/1000 {
				cm.keySent.Store(time.Now().UnixNano())
				p.Send(tea.KeyPressMsg{Code: 'z', Text: "z"})
			}
		}
	}
	tick.Stop()
	_ = syscall.Getrusage(rusageThread, &gen1)
	elapsed := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	b.StopTimer()
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	gen := time.Duration(gen1.Utime.Nano() + gen1.Stime.Nano() - gen0.Utime.Nano() - gen0.Stime.Nano())
	frames := cm.frames.Load() - f0
	var worst time.Duration
	cm.keyLat.mu.Lock()
	for _, d := range cm.keyLat.d {
		worst = max(worst, d)
	}
	cm.keyLat.mu.Unlock()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.Quit()
	<-done
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "%cpu")
	b.ReportMetric(100*gen.Seconds()/elapsed.Seconds(), "%cpu-loadgen")
	b.ReportMetric(100*(cpu-gen).Seconds()/elapsed.Seconds(), "%cpu-ui")
	b.ReportMetric(float64(frames)/elapsed.Seconds(), "fps")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-key-max")
	b.ReportMetric(float64(ru1.Maxrss)/1024, "MiB-maxrss")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
	b.ReportMetric(0, "ns/op")
}
