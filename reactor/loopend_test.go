package reactor

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
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

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// settledFDs is how many descriptors the process has above before, once
// that is want or 2 s passed: descriptors that gnet or the net package
// close asynchronously (the duplicate an Enroll takes over, say) may still
// be open for a moment after the loop answered.
func settledFDs(t *testing.T, before, want int) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := openFDs(t) - before
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneDescriptorPerConnection: a connection costs the reactor one
// descriptor (gnet's), also after a read pause detached it from gnet and
// a resume enrolled it again; only a detached connection holds the
// reactor's own duplicate instead.
func TestOneDescriptorPerConnection(t *testing.T) {
	guard(t)
	var mu sync.Mutex
	var conns []*Conn
	r := startReactor(t, &funcs{open: func(c *Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }}, "127.0.0.1", "")
	const n = 50
	before := openFDs(t)
	var peers []net.Conn
	for range n {
		peers = append(peers, dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port())))
	}
	for r.Conns() != n {
		time.Sleep(5 * time.Millisecond)
	}
	// n for the peers' sockets in this process, n for the reactor's.
	if got := settledFDs(t, before, 2*n); got != 2*n {
		t.Fatalf("%d connections added %d descriptors, want %d", n, got, 2*n)
	}
	onLoop(t, r, func() {
		for _, c := range conns {
			c.PauseRead()
			c.detachGnet()
		}
	})
	if got := settledFDs(t, before, 2*n); got != 2*n {
		t.Fatalf("detached: %d descriptors, want %d", got, 2*n)
	}
	onLoop(t, r, func() {
		for _, c := range conns {
			c.ResumeRead()
		}
	})
	for i, p := range peers { // the echo-less handler consumes; writes must still work
		roundTripTo(t, r, conns, p, i)
	}
	if got := settledFDs(t, before, 2*n); got != 2*n {
		t.Fatalf("resumed: %d descriptors, want %d", got, 2*n)
	}
}

// roundTripTo sends one byte from the peer and one back from the reactor's
// side of the connection that received it.
func roundTripTo(t *testing.T, r *Reactor, conns []*Conn, p net.Conn, i int) {
	t.Helper()
	local := p.LocalAddr().(*net.TCPAddr).AddrPort()
	onLoop(t, r, func() {
		for _, c := range conns {
			if c.RemoteAddr() == local {
				if err := c.Write([]byte{byte(i)}); err != nil {
					t.Errorf("write after resume: %v", err)
				}
			}
		}
	})
	_ = p.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(p, b); err != nil || b[0] != byte(i) {
		t.Fatalf("read %v %v", b, err)
	}
}
