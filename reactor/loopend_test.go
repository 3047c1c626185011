package reactor

import (
	"errors"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestAbortEndsTheReactorAtOnce ends the loop under a reactor with an
// accepted connection, a dialed connection that is paused and detached
// from gnet, and a dial in flight: Done closes, Err names the cause, every
// connection gets OnClose with it, the dial's callback runs, Submit and
// Dial fail with ErrClosed, and Close returns promptly.
func TestAbortEndsTheReactorAtOnce(t *testing.T) {
	guard(t)
	var mu sync.Mutex
	closes := map[*Conn]error{}
	h := &funcs{close: func(c *Conn, err error) { mu.Lock(); closes[c] = err; mu.Unlock() }}
	r, err := Start(Config{ListenV4: "127.0.0.1", Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	server := startReactor(t, &funcs{}, "127.0.0.1", "")
	peer := dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port()))
	dialed := make(chan *Conn, 1)
	_ = r.Dial(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(server.Port())), 5*time.Second, nil,
		func(c *Conn, err error) {
			if err != nil {
				t.Errorf("dial: %v", err)
			}
			dialed <- c
		})
	paused := <-dialed
	if paused == nil {
		t.FailNow()
	}
	onLoop(t, r, func() { paused.PauseRead(); paused.detachGnet() })
	for r.Conns() != 2 {
		time.Sleep(5 * time.Millisecond)
	}
	pending := make(chan error, 1)
	_ = r.Dial(fullListener(t), 30*time.Second, nil, func(c *Conn, err error) { pending <- err })

	cause := errors.New("injected loop failure")
	r.Abort(cause)
	select {
	case <-r.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Abort")
	}
	if err := r.Err(); !errors.Is(err, ErrClosed) || !errors.Is(err, cause) {
		t.Errorf("Err() = %v, want ErrClosed wrapping the cause", err)
	}
	select {
	case err := <-pending:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, cause) {
			t.Errorf("pending dial: %v, want ErrClosed wrapping the cause", err)
		}
	default:
		t.Error("the pending dial's callback did not run before Done")
	}
	mu.Lock()
	if len(closes) != 2 {
		t.Errorf("%d close events, want 2", len(closes))
	}
	for _, err := range closes {
		if !errors.Is(err, ErrClosed) || !errors.Is(err, cause) {
			t.Errorf("close cause %v, want ErrClosed wrapping the cause", err)
		}
	}
	mu.Unlock()
	if err := r.Submit(func() {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after the loop ended: %v", err)
	}
	if err := r.Dial(netip.MustParseAddrPort("127.0.0.1:1"), time.Second, nil, func(*Conn, error) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial after the loop ended: %v", err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer read: %v, want EOF", err)
	}
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}
