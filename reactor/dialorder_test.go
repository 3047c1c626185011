package reactor

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// TestDialRegistrationPrecedesEnrolment pins the order of a dial's two
// hand-offs to the loop: its registration (a submitted closure, run when
// the loop reads its wake-up datagram) and the enrolment of the connected
// socket (a gnet task). The test holds the loop inside a gnet task while
// the dial connects; an enrolment queued meanwhile runs in the same round
// of tasks, before the loop reads the wake-up. Unordered, OnOpen then took
// the socket for a failed dial, closed it, and the callback never ran.
func TestDialRegistrationPrecedesEnrolment(t *testing.T) {
	guard(t)
	server := startReactor(t, &funcs{}, "127.0.0.1", "")
	client := startReactor(t, &funcs{}, "127.0.0.1", "")
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(server.Port()))
	for range 3 {
		blocked, release := make(chan struct{}), make(chan struct{})
		err := client.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			close(blocked)
			<-release
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		<-blocked
		res := make(chan error, 1)
		if err := client.Dial(addr, 5*time.Second, nil, func(c *Conn, err error) { res <- err }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the TCP connect completes meanwhile
		close(release)
		select {
		case err := <-res:
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the dial's callback never ran")
		}
	}
}
