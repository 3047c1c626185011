package reactor

import (
	"reflect"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// The busy poll and the yield before a blocking poll are options of the
// gnet patch this module carries (third_party/gnet/CHIRP.md), fields
// upstream gnet lacks. They are set by name, so that chirp still builds
// against an unpatched gnet, which an application importing chirp gets
// unless it copies the replace directive: there Start refuses a BusyPoll
// instead of ignoring it, and the loop yields before every blocking poll,
// as upstream gnet does.

// optionIndex is the index of the patch's field name of type T in
// gnet.Options, nil without one.
func optionIndex[T any](name string) []int {
	f, ok := reflect.TypeFor[gnet.Options]().FieldByName(name)
	if !ok || f.Type != reflect.TypeFor[T]() {
		return nil
	}
	return f.Index
}

// busyPollIndex is the index of gnet's Options.BusyPoll, nil without one.
var busyPollIndex = optionIndex[time.Duration]("BusyPoll")

// busyPollSupported reports whether the gnet this program was built with
// has the busy poll (Config.BusyPoll).
func busyPollSupported() bool { return busyPollIndex != nil }

// withBusyPoll is the gnet option that sets the busy poll, if there is one.
func withBusyPoll(d time.Duration) gnet.Option {
	return func(o *gnet.Options) {
		if d > 0 && busyPollIndex != nil {
			reflect.ValueOf(o).Elem().FieldByIndex(busyPollIndex).SetInt(int64(d))
		}
	}
}

// beforeBlockIndex is the index of the patch's Options.BeforeBlock, nil
// without one. An unpatched gnet yields before every blocking poll.
var beforeBlockIndex = optionIndex[func() bool]("BeforeBlock")

// withBeforeBlock is the gnet option that has the loop call f each time it
// ran out of events, if the patch offers it.
func withBeforeBlock(f func() bool) gnet.Option {
	return func(o *gnet.Options) {
		if beforeBlockIndex != nil {
			reflect.ValueOf(o).Elem().FieldByIndex(beforeBlockIndex).Set(reflect.ValueOf(f))
		}
	}
}

// beforeBlock runs on the loop each time it ran out of events, before it
// sleeps in epoll_wait. When goroutines wait to run (runtime/metrics), the
// loop yields to the scheduler first, so that those it made runnable (a
// handler worker, a Send's caller, anything a callback woke) run at once on
// its thread. Otherwise they wait for another thread to take them, which
// can take until the runtime next looks at a P whose thread sleeps in a
// system call (up to 10 ms). When nothing is runnable the loop sleeps at
// once: a yield then only hands the loop to another thread.
//
// While the loop yields, Submit skips the wake-up datagram: the loop runs
// what was submitted meanwhile as soon as it is back, and reports that it
// did work, so that gnet polls again before it sleeps. The same holds for
// what was submitted while a callback yielded (Yield).
func (r *Reactor) beforeBlock() bool {
	r.Yield()
	if !r.queuedInYield {
		return false
	}
	r.queuedInYield = false
	return r.drain()
}

// Yield lets the goroutines that wait to run (those the loop just readied:
// a handler worker, a Send's caller) run on the loop's thread now, if there
// are any, and reports whether it yielded. Closures they submit meanwhile
// are queued without a wake-up datagram; the loop runs them before it next
// sleeps, or the caller takes what it needs of them first. On the loop
// only, in a callback. Without the gnet patch it does nothing: the loop
// would not run those closures before it sleeps.
func (r *Reactor) Yield() bool {
	if beforeBlockIndex == nil {
		return false // no beforeBlock would run what is queued meanwhile
	}
	metrics.Read(r.runnable[:])
	if v := r.runnable[0].Value; v.Kind() != metrics.KindUint64 || v.Uint64() == 0 {
		return false
	}
	r.mu.Lock()
	r.yielding = true
	r.mu.Unlock()
	runtime.Gosched()
	r.mu.Lock()
	r.yielding = false
	r.queuedInYield = r.queuedInYield || len(r.queue) > 0
	r.mu.Unlock()
	return true
}
