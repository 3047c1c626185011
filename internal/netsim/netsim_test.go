package netsim

import (
	"strings"
	"testing"
	"time"
)

// The switch itself: delay, partitions and a pulled link act on a TCP
// connection as they would on a real network.
func TestNetSimSwitch(t *testing.T) {
	n := New(t)
	a, b := n.NewHost(), n.NewHost()
	pinger, echo := a.StartAgent(t), b.StartAgent(t)
	addr := echo.TCPEcho()
	if rtt := pinger.TCPRTT(addr); rtt > 5*time.Millisecond {
		t.Errorf("round trip %v without delay", rtt)
	}
	n.Netem(a, Impair{Delay: 10 * time.Millisecond, Jitter: 2 * time.Millisecond})
	n.Netem(b, Impair{Delay: 5 * time.Millisecond})
	if rtt := pinger.TCPRTT(addr); rtt < 15*time.Millisecond || rtt > 25*time.Millisecond {
		t.Errorf("round trip %v with 10±2 ms and 5 ms delays", rtt)
	}
	n.NetemAll(Impair{})
	for _, cut := range []func(){func() { n.Partition(a, b) }, func() { n.Link(b, false) }} {
		cut()
		if _, err := pinger.call(request{Op: "tcprtt", Addr: addr}, time.Minute); err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("connect across a cut: %v, want a timeout", err)
		}
		n.Heal()
		n.Link(b, true)
		if rtt := pinger.TCPRTT(addr); rtt > 5*time.Millisecond {
			t.Errorf("round trip %v after the heal", rtt)
		}
	}
}
