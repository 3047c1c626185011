package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNodeShutsDownWhenItsLoopDies kills the event loop under a node with
// sends pending (one waiting for its ACK, others queued): every pending
// and later send fails with ErrShutdown naming the cause, Done closes, Err
// and Stats name the cause, the cause is logged at Error, and Close
// returns promptly although its context has no deadline.
func TestNodeShutsDownWhenItsLoopDies(t *testing.T) {
	hold := make(chan struct{})
	received := make(chan struct{}, 8)
	rx := startNode(t, testConfig(false, HandlerFunc(func(m *Message) {
		received <- struct{}{}
		<-hold // keeps the slot, so the sender waits for the ACK
	})))
	defer close(hold) // runs before rx's cleanup Close

	logs, log := newLineLog()
	cfg := testConfig(false, nil)
	cfg.Timeout = 30 * time.Second // nothing may time out on its own
	cfg.Logger = log
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const sends = 4
	results := make(chan error, sends)
	for i := range sends {
		go func() {
			m, _ := NewMessage(addr(rx), []byte(fmt.Sprint("m", i)))
			results <- n.Send(context.Background(), m)
		}()
	}
	select {
	case <-received:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got nothing")
	}
	eventually(t, 5*time.Second, "all sends pending", func() bool { return n.pending.Load() == sends })

	cause := errors.New("injected loop failure")
	n.r.Abort(cause)

	for range sends {
		select {
		case err := <-results:
			if !errors.Is(err, ErrShutdown) || !strings.Contains(err.Error(), cause.Error()) {
				t.Errorf("pending send: %v, want ErrShutdown naming %q", err, cause)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a pending send did not fail after the loop died")
		}
	}
	select {
	case <-n.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the loop died")
	}
	if err := n.Err(); !errors.Is(err, ErrShutdown) || !errors.Is(err, cause) {
		t.Errorf("Err() = %v, want ErrShutdown wrapping the cause", err)
	}
	if st := n.Stats(); !errors.Is(st.Failure, cause) {
		t.Errorf("Stats().Failure = %v, want the cause", st.Failure)
	}
	m, _ := NewMessage(addr(rx), []byte("later"))
	start := time.Now()
	if err := n.Send(ctxT(t), m); !errors.Is(err, ErrShutdown) || !errors.Is(err, cause) {
		t.Errorf("send after the loop died: %v, want ErrShutdown wrapping the cause", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("send after the loop died took %v", d)
	}
	if l := strings.Join(logs.matching(), ""); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, cause.Error()) {
		t.Errorf("no Error log naming the cause; log:\n%s", l)
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close(context.Background()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the loop died")
	}
}
