package reactor

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fullListener is a loopback listener with backlog 1 that never accepts,
// with its accept queue filled, so further SYNs are dropped.
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	// Fill the queue until a connect times out.
	for i := 0; i < 16; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("accept queue never filled")
	return addr
}

func TestDialToFullAcceptQueueTimesOut(t *testing.T) {
	guard(t)
	addr := fullListener(t)
	r := startReactor(t, &funcs{}, "127.0.0.1", "")
	res := make(chan error, 1)
	start := time.Now()
	if err := r.Dial(addr, 300*time.Millisecond, nil, func(c *Conn, err error) { res <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if !errors.Is(err, ErrTimeout) || err.Error() != "no TCP connection within 300ms" {
			t.Fatalf("want ErrTimeout, got %v", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("timed out after %v, before the 300ms timeout", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dial result never came")
	}
}

func TestThousandConcurrentConnections(t *testing.T) {
	guard(t)
	r := startReactor(t, echoHandler(), "127.0.0.1", "")
	addr := "127.0.0.1:" + strconv.Itoa(r.Port())
	const N = 1000
	conns := make([]net.Conn, N)
	for i := range conns {
		conns[i] = dialTCP(t, addr)
	}
	var wg sync.WaitGroup
	errs := make(chan error, N)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			msg := []byte("conn " + strconv.Itoa(i) + " says hello")
			got := make([]byte, len(msg))
			for k := 0; k < 5; k++ {
				if _, err := c.Write(msg); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- err
					return
				}
				if string(got) != string(msg) {
					errs <- errors.New("crossed wires: " + string(got))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := r.Conns(); n != N {
		t.Fatalf("Conns() = %d, want %d", n, N)
	}
}

func TestCloseWithLiveConnections(t *testing.T) {
	guard(t)
	var mu sync.Mutex
	closes := map[*Conn]error{}
	h := &funcs{close: func(c *Conn, err error) { mu.Lock(); closes[c] = err; mu.Unlock() }}
	server := startReactor(t, echoHandler(), "127.0.0.1", "")
	r, err := Start(Config{ListenV4: "127.0.0.1", Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	// 5 accepted, 5 dialed, 1 paused, 1 dial in flight to a full queue.
	var peers []net.Conn
	for i := 0; i < 5; i++ {
		peers = append(peers, dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port())))
	}
	dialed := make(chan *Conn, 5)
	for i := 0; i < 5; i++ {
		_ = r.Dial(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(server.Port())), 5*time.Second, nil,
			func(c *Conn, err error) {
				if err != nil {
					t.Errorf("dial: %v", err)
				}
				dialed <- c
			})
	}
	var paused *Conn
	for i := 0; i < 5; i++ {
		paused = <-dialed
	}
	onLoop(t, r, func() { paused.PauseRead() })
	pending := make(chan error, 1)
	_ = r.Dial(fullListener(t), 30*time.Second, nil, func(c *Conn, err error) { pending <- err })
	for r.Conns() != 10 {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-pending; !errors.Is(err, ErrClosed) {
		t.Errorf("pending dial: %v, want ErrClosed", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(closes) != 10 {
		t.Fatalf("%d close events, want 10", len(closes))
	}
	for _, err := range closes {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("close cause %v, want ErrClosed", err)
		}
	}
	for _, p := range peers {
		_ = p.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := p.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("peer read after Close: %v, want EOF", err)
		}
	}
}

func TestConnCloseReportsOnceAndStopsWrites(t *testing.T) {
	guard(t)
	closes := make(chan error, 4)
	r := startReactor(t, &funcs{
		open:  func(c *Conn) { c.Close(errors.New("not welcome")); _ = c.Write([]byte("x")) },
		close: func(c *Conn, err error) { closes <- err },
	}, "127.0.0.1", "")
	p := dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port()))
	_ = p.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := p.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d bytes, err %v; want EOF", n, err)
	}
	if err := <-closes; err == nil || err.Error() != "not welcome" {
		t.Fatalf("close cause %v", err)
	}
	select {
	case err := <-closes:
		t.Fatalf("second close event: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}
