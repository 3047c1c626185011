package reactor

import (
	"reflect"
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

// busyPollIndex is the index of gnet's Options.BusyPoll, nil without one.
var busyPollIndex = func() []int {
	f, ok := reflect.TypeFor[gnet.Options]().FieldByName("BusyPoll")
	if !ok || f.Type != reflect.TypeFor[time.Duration]() {
		return nil
	}
	return f.Index
}()

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

// yieldIndex is the index of the patch's Options.YieldBeforeBlock, nil
// without one. An unpatched gnet yields before every blocking poll.
var yieldIndex = func() []int {
	f, ok := reflect.TypeFor[gnet.Options]().FieldByName("YieldBeforeBlock")
	if !ok || f.Type != reflect.TypeFor[func() bool]() {
		return nil
	}
	return f.Index
}()

// withYieldBeforeBlock is the gnet option that has the loop ask yield each
// time it ran out of events, if the patch offers it.
func withYieldBeforeBlock(yield func() bool) gnet.Option {
	return func(o *gnet.Options) {
		if yieldIndex != nil {
			reflect.ValueOf(o).Elem().FieldByIndex(yieldIndex).Set(reflect.ValueOf(yield))
		}
	}
}

// yieldBeforeBlock reports whether goroutines are waiting to run, asked
// by the loop each time it ran out of events. The loop then yields to the
// scheduler before it sleeps in epoll_wait, so that goroutines it made
// runnable (handler workers, a Send's caller, anything a callback woke)
// run at once on its thread. Otherwise they wait for another thread to take
// them, which can take until the runtime next looks at a P whose thread
// sleeps in a system call (up to 10 ms). When nothing is runnable the loop
// sleeps at once: a yield then only hands the loop to another thread.
func (r *Reactor) yieldBeforeBlock() bool {
	metrics.Read(r.runnable[:])
	v := r.runnable[0].Value
	return v.Kind() == metrics.KindUint64 && v.Uint64() > 0
}
