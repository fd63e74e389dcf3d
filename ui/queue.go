package ui

import (
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/bigbang-nix/bigbang/steps"
)

// frameInterval caps how often queued events reach Update (and so how often
// the screen is redrawn): 60 frames per second.
const frameInterval = time.Second / 60

// eventQueue carries events from the runner's reader goroutine to the UI.
// Push never blocks and never drops: it appends under a mutex and pokes a
// one-slot channel, so a burst of 20,000 lines costs one wake-up, and the
// UI drains everything queued once per frame.
type eventQueue struct {
	mu     sync.Mutex
	buf    []steps.Event
	spare  []steps.Event // the slice handed out the time before, free again
	notify chan struct{}
	done   chan struct{}
	once   sync.Once

	// pushed, drained and applied count events: queued, handed to a
	// message, and applied by Update. settle waits on applied (under mu,
	// signalled through applyCond).
	pushed, drained, applied uint64
	closed                   bool
	applyCond                sync.Cond
}

func newEventQueue() *eventQueue {
	q := &eventQueue{notify: make(chan struct{}, 1), done: make(chan struct{})}
	q.applyCond.L = &q.mu
	return q
}

// push queues e; safe from any goroutine.
func (q *eventQueue) push(e steps.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	q.mu.Lock()
	q.buf = append(q.buf, e)
	q.pushed++
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// drain takes everything queued. The slice it returns stays valid until
// the next drain: the root model asks for the next batch (waitCmd) only
// after it has applied this one, so the slice before is free by then and
// is reused, which spares a growing allocation per frame.
func (q *eventQueue) drain() []steps.Event {
	q.mu.Lock()
	out := q.buf
	clear(q.spare) // let the old lines go
	q.buf = q.spare[:0]
	q.spare = out
	q.drained += uint64(len(out))
	q.mu.Unlock()
	return out
}

// settle waits until Update has applied every event pushed before the
// call, or the program has ended. The install's command settles before it
// reports the end of the install, so that the result screen is built from
// all of the install's output whatever the timing: without it the end
// could overtake the last frame of events, and the "Last lines" would
// depend on the scheduler.
func (q *eventQueue) settle() {
	q.mu.Lock()
	defer q.mu.Unlock()
	target := q.pushed
	for q.applied < target && !q.closed {
		q.applyCond.Wait()
	}
}

// close releases a pending wait when the program ends.
func (q *eventQueue) close() {
	q.once.Do(func() {
		close(q.done)
		q.mu.Lock()
		q.closed = true
		q.applyCond.Broadcast()
		q.mu.Unlock()
	})
}

// eventsMsg is one frame's worth of queued events.
type eventsMsg []steps.Event

// waitCmd waits for queued events, lets a frame's worth gather, and hands
// them to Update in one message.
//
// The root asks for the next batch only once it has applied the one
// before (and at the start, when there was none), so asking is also the
// sign that every event drained so far is applied: settle waits for it.
func (q *eventQueue) waitCmd() tea.Cmd {
	q.mu.Lock()
	q.applied = q.drained
	q.applyCond.Broadcast()
	q.mu.Unlock()
	return func() tea.Msg {
		select {
		case <-q.notify:
		case <-q.done:
			return nil
		}
		select {
		case <-time.After(frameInterval):
		case <-q.done:
		}
		return eventsMsg(q.drain())
	}
}
