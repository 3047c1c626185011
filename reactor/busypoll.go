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

var busyPollField, busyPollOK = reflect.TypeFor[gnet.Options]().FieldByName("BusyPoll")

// BusyPollSupported reports whether the gnet this program was built with
// has the busy poll (Config.BusyPoll).
func BusyPollSupported() bool {
	return busyPollOK && busyPollField.Type == reflect.TypeFor[time.Duration]()
}

// withBusyPoll is the gnet option that sets the busy poll, if there is one.
func withBusyPoll(d time.Duration) gnet.Option {
	return func(o *gnet.Options) {
		if d > 0 && BusyPollSupported() {
			reflect.ValueOf(o).Elem().FieldByIndex(busyPollField.Index).SetInt(int64(d))
		}
	}
}
