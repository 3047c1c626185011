package reactor

import (
	"container/heap"
	"time"
)

// Timer is a one-shot or repeating timer on the loop. Its function runs on
// the loop.
type Timer struct {
	r      *Reactor
	when   int64 // loop clock, ns
	period time.Duration
	f      func()
	idx    int // index in the heap, -1 when not scheduled
}

// AfterFunc runs f on the loop after d. Must be called on the loop.
func (r *Reactor) AfterFunc(d time.Duration, f func()) *Timer {
	t := &Timer{r: r, f: f, idx: -1}
	r.schedule(t, d)
	return t
}

// NewTimer makes a timer that runs f on the loop once Reset schedules it;
// a timer reused with Reset does not allocate. Must be called on the loop.
func (r *Reactor) NewTimer(f func()) *Timer {
	return &Timer{r: r, f: f, idx: -1}
}

// Every runs f on the loop every d (d > 0) until the timer is stopped.
// Must be called on the loop.
func (r *Reactor) Every(d time.Duration, f func()) *Timer {
	if d <= 0 {
		d = time.Millisecond
	}
	t := &Timer{r: r, f: f, idx: -1, period: d}
	r.schedule(t, d)
	return t
}

// Stop cancels the timer; it reports whether the timer was still pending.
// Must be called on the loop.
func (t *Timer) Stop() bool {
	if t == nil || t.idx < 0 {
		return false
	}
	t.r.timers.remove(t)
	return true
}

// Reset reschedules the timer to fire after d. Must be called on the loop.
func (t *Timer) Reset(d time.Duration) {
	t.Stop()
	t.r.schedule(t, d)
}

func (r *Reactor) schedule(t *Timer, d time.Duration) {
	if r.closing {
		return
	}
	t.when = r.now() + int64(d)
	heap.Push(&r.timers, t)
	r.armWake()
}

// armWake makes sure a Go timer wakes the loop for the earliest deadline.
func (r *Reactor) armWake() {
	if len(r.timers) == 0 {
		return
	}
	first := r.timers[0].when
	if r.wakeAt != 0 && r.wakeAt <= first {
		return
	}
	r.wakeAt = first
	d := time.Duration(first - r.now())
	if r.wakeT == nil {
		r.wakeT = time.AfterFunc(d, r.wake)
	} else {
		r.wakeT.Reset(d)
	}
}

func (r *Reactor) wake() { _ = r.Submit(r.runTimers) }

func (r *Reactor) runTimers() {
	r.wakeAt = 0
	now := r.now()
	for len(r.timers) > 0 && r.timers[0].when <= now && !r.closing {
		t := heap.Pop(&r.timers).(*Timer)
		if t.period > 0 {
			t.when += int64(t.period)
			if t.when <= now {
				t.when = now + int64(t.period)
			}
			heap.Push(&r.timers, t)
		}
		t.f()
	}
	r.armWake()
}

// timerHeap is a min-heap of timers by deadline.
type timerHeap []*Timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}
func (h *timerHeap) remove(t *Timer) {
	if t.idx >= 0 && t.idx < len(*h) && (*h)[t.idx] == t {
		heap.Remove(h, t.idx)
	}
}
