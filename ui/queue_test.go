package ui

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
	"github.com/bigbang-nix/bigbang/steps/engine"
)

// installBackend is an engine whose install sends events and ends at
// once: the end races the events through the queue.
type installBackend struct {
	fakeBackend
	events []steps.Event
}

func (b installBackend) Install(_ context.Context, _ engine.InstallRequest, sink steps.Sink) (engine.InstallResult, error) {
	for _, e := range b.events {
		sink(e)
	}
	return engine.InstallResult{Outcome: steps.OutcomeFailed, FailedPhase: steps.PhaseDisko}, nil
}

// TestInstallEndWaitsForEvents: the end of the install reaches Update only
// after every event the install sent is applied, so that the result's last
// lines are the install's last lines whatever the timing.
func TestInstallEndWaitsForEvents(t *testing.T) {
	evs := append(installEvents(), steps.Event{Time: at(90), Type: steps.EventLine, Phase: steps.PhaseDisko, Text: "the very last line"})
	m := testModel(t, 120, 40)
	m.engine = installBackend{events: evs}
	toPlan(t, m)
	m.Update(key("enter"))
	cmd := m.startInstall()
	ended := make(chan tea.Msg, 1)
	go func() { ended <- findMsg[installDoneMsg](cmd) }()
	select {
	case msg := <-ended:
		t.Fatalf("the install's end (%T) came before its events were applied", msg)
	case <-time.After(200 * time.Millisecond):
	}
	// The program's event pump: the next wait hands over the queued events.
	wait := m.queue.waitCmd()
	got, ok := wait().(eventsMsg)
	if !ok || len(got) != len(evs) {
		t.Fatalf("the queue handed over %d events, want %d", len(got), len(evs))
	}
	m.Update(got)
	var msg tea.Msg
	select {
	case msg = <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the install's end never came after its events were applied")
	}
	if _, ok := msg.(installDoneMsg); !ok {
		t.Fatalf("the install command returned %T, want its end", msg)
	}
	m.Update(msg)
	if v := view(m); m.screen != screenResult || !strings.Contains(v, "the very last line") {
		t.Errorf("the result lacks the install's last line (screen %v):\n%s", m.screen, v)
	}
}

// findMsg runs cmd (and the commands of a batch, one after the other) and
// returns the first message of type T, or nil.
func findMsg[T tea.Msg](cmd tea.Cmd) tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		for _, c := range b {
			if m := findMsg[T](c); m != nil {
				return m
			}
		}
		return nil
	}
	if _, ok := msg.(T); ok {
		return msg
	}
	return nil
}
