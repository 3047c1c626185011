package reactor

import (
	"reflect"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// The busy poll is an option of the gnet patch this module carries
// (third_party/gnet/CHIRP.md), a field upstream gnet lacks. It is set by
// name, so that chirp still builds against an unpatched gnet, which an
// application importing chirp gets unless it copies the replace directive:
// there Start refuses a BusyPoll instead of ignoring it.

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
