package reactor

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// funcs is a Handler made of optional functions.
type funcs struct {
	open  func(c *Conn)
	data  func(c *Conn, b []byte) int
	close func(c *Conn, err error)
	drain func(c *Conn)
}

func (f *funcs) OnOpen(c *Conn) {
	if f.open != nil {
		f.open(c)
	}
}
func (f *funcs) OnData(c *Conn, b []byte) int {
	if f.data != nil {
		return f.data(c, b)
	}
	return len(b)
}
func (f *funcs) OnClose(c *Conn, err error) {
	if f.close != nil {
		f.close(c, err)
	}
}
func (f *funcs) OnDrain(c *Conn) {
	if f.drain != nil {
		f.drain(c)
	}
}

func echoHandler() *funcs {
	return &funcs{data: func(c *Conn, b []byte) int {
		if err := c.Write(b); err != nil {
			return len(b)
		}
		return len(b)
	}}
}

func startReactor(t *testing.T, h Handler, v4, v6 string) *Reactor {
	t.Helper()
	r, err := Start(Config{ListenV4: v4, ListenV6: v6, Handler: h})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// onLoop runs f on the loop and waits for it.
func onLoop(t *testing.T, r *Reactor, f func()) {
	t.Helper()
	done := make(chan struct{})
	if err := r.Submit(func() { f(); close(done) }); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("loop did not run the closure")
	}
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo mismatch: got %q want %q", got, msg)
	}
}

func TestEchoOnAcceptedConnectionsIPv4AndIPv6(t *testing.T) {
	guard(t)
	r := startReactor(t, echoHandler(), "127.0.0.1", "::1")
	port := strconv.Itoa(r.Port())
	if r.Port() == 0 {
		t.Fatal("port 0 was not resolved")
	}
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		c := dialTCP(t, host+":"+port)
		roundTrip(t, c, []byte("hello "+host))
		roundTrip(t, c, bytes.Repeat([]byte("x"), 300000))
	}
}

func TestEchoThroughDialedConnection(t *testing.T) {
	guard(t)
	server := startReactor(t, echoHandler(), "127.0.0.1", "::1")
	got := make(chan []byte, 16)
	client := startReactor(t, &funcs{data: func(c *Conn, b []byte) int {
		got <- append([]byte(nil), b...)
		return len(b)
	}}, "127.0.0.1", "")
	for _, ip := range []string{"127.0.0.1", "::1"} {
		addr := netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(server.Port()))
		opened := make(chan *Conn, 1)
		if err := client.Dial(addr, 5*time.Second, "ctx", func(c *Conn, err error) {
			if err != nil {
				t.Errorf("dial: %v", err)
				opened <- nil
				return
			}
			if c.Context() != "ctx" || !c.Outbound() || c.RemoteAddr() != addr {
				t.Errorf("dialed conn: ctx %v outbound %v remote %v", c.Context(), c.Outbound(), c.RemoteAddr())
			}
			_ = c.Write([]byte("ping " + ip))
			opened <- c
		}); err != nil {
			t.Fatal(err)
		}
		if c := <-opened; c == nil {
			t.FailNow()
		}
		var buf []byte
		deadline := time.After(10 * time.Second)
		for string(buf) != "ping "+ip {
			select {
			case b := <-got:
				buf = append(buf, b...)
			case <-deadline:
				t.Fatalf("no echo, have %q", buf)
			}
		}
	}
}

func TestDialClosedPortIsRefused(t *testing.T) {
	guard(t)
	// A port bound but not listening refuses connections, and unlike a
	// closed listener's port, no other listener (this test's reactor
	// included) can take it meanwhile.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	r := startReactor(t, &funcs{}, "127.0.0.1", "")
	res := make(chan error, 1)
	if err := r.Dial(addr, 2*time.Second, nil, func(c *Conn, err error) { res <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		// The text says what happened; the caller names the address.
		var oe *net.OpError
		if !errors.Is(err, ErrRefused) || !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &oe) ||
			err.Error() != "connection refused" {
			t.Fatalf("want ErrRefused reading \"connection refused\", got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("dial result never came")
	}
}

func TestListenOnPortInUseFails(t *testing.T) {
	guard(t)
	r := startReactor(t, &funcs{}, "127.0.0.1", "")
	_, err := Start(Config{ListenV4: "127.0.0.1", Port: r.Port(), Handler: &funcs{}})
	if !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("want ErrAddrInUse, got %v", err)
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	guard(t)
	cases := map[string]Config{
		"no handler":   {ListenV4: "127.0.0.1"},
		"no listener":  {Handler: &funcs{}},
		"bad v4":       {ListenV4: "::1", Handler: &funcs{}},
		"bad v6":       {ListenV6: "127.0.0.1", Handler: &funcs{}},
		"bad port":     {ListenV4: "127.0.0.1", Port: 70000, Handler: &funcs{}},
		"bad backlog":  {ListenV4: "127.0.0.1", Backlog: -1, Handler: &funcs{}},
		"garbage addr": {ListenV4: "localhost", Handler: &funcs{}},
	}
	for name, cfg := range cases {
		if _, err := Start(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: want ErrConfig, got %v", name, err)
		}
	}
}

func TestSubmitKeepsPerGoroutineOrder(t *testing.T) {
	guard(t)
	r := startReactor(t, &funcs{}, "127.0.0.1", "")
	const G, N = 32, 2000
	last := make([]int, G) // loop-owned
	bad := 0
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= N; i++ {
				if err := r.Submit(func() {
					if last[g] != i-1 {
						bad++
					}
					last[g] = i
				}); err != nil {
					t.Errorf("submit: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	onLoop(t, r, func() {
		for g := range last {
			if last[g] != N {
				t.Errorf("goroutine %d: last %d", g, last[g])
			}
		}
		if bad != 0 {
			t.Errorf("%d closures ran out of order", bad)
		}
	})
}

func TestSubmitAfterCloseFails(t *testing.T) {
	guard(t)
	r, err := Start(Config{ListenV4: "127.0.0.1", Handler: &funcs{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if err := r.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: want ErrClosed, got %v", err)
	}
}

func TestTimersFireInOrderAndStop(t *testing.T) {
	guard(t)
	r := startReactor(t, &funcs{}, "127.0.0.1", "")
	type fired struct {
		id int
		at time.Duration
	}
	ch := make(chan fired, 100)
	start := time.Now()
	var stopped *Timer
	onLoop(t, r, func() {
		for _, id := range []int{50, 10, 30} {
			r.AfterFunc(time.Duration(id)*time.Millisecond, func() { ch <- fired{id, time.Since(start)} })
		}
		stopped = r.AfterFunc(20*time.Millisecond, func() { ch <- fired{-1, 0} })
		// thousands of timers alive at once, all cancelled
		for i := 0; i < 5000; i++ {
			r.AfterFunc(time.Hour, func() {}).Stop()
		}
	})
	onLoop(t, r, func() {
		if !stopped.Stop() {
			t.Error("Stop of a pending timer returned false")
		}
	})
	for _, want := range []int{10, 30, 50} {
		select {
		case f := <-ch:
			if f.id != want {
				t.Fatalf("timer %d fired, want %d", f.id, want)
			}
			late := f.at - time.Duration(want)*time.Millisecond
			if late < 0 {
				t.Fatalf("timer %d fired early by %v", f.id, -late)
			}
			if late > 500*time.Millisecond { // generous: shared CI machine
				t.Fatalf("timer %d fired %v late", f.id, late)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("timer did not fire")
		}
	}
	select {
	case f := <-ch:
		t.Fatalf("unexpected timer %d fired", f.id)
	case <-time.After(50 * time.Millisecond):
	}
	onLoop(t, r, func() {
		if n := len(r.timers); n != 0 {
			t.Errorf("%d timers left in the heap", n)
		}
	})
}

func TestRepeatingTimer(t *testing.T) {
	guard(t)
	r := startReactor(t, &funcs{}, "127.0.0.1", "")
	n := 0
	done := make(chan struct{})
	onLoop(t, r, func() {
		var tm *Timer
		tm = r.Every(5*time.Millisecond, func() {
			n++
			if n == 5 {
				tm.Stop()
				close(done)
			}
		})
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("repeating timer stalled")
	}
	time.Sleep(30 * time.Millisecond)
	onLoop(t, r, func() {
		if n != 5 {
			t.Errorf("timer ran %d times after Stop at 5", n)
		}
	})
}
