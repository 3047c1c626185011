package reactor

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/heap"
)

// pattern is a stream whose every offset has a known byte: byte i is
// i mod 251 (prime, so chunk boundaries never line up with it).
var pattern = func() []byte {
	b := make([]byte, 251*1024)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

// checkStream verifies data as the bytes at stream offset off.
func checkStream(off int64, data []byte) bool {
	for len(data) > 0 {
		start := int(off % 251)
		n := min(len(data), len(pattern)-start)
		if !bytes.Equal(data[:n], pattern[start:start+n]) {
			return false
		}
		data, off = data[n:], off+int64(n)
	}
	return true
}

// TestPausedConnectionBoundsMemoryUnderFlood is the read-pause contract: a
// client writes 1 GiB as fast as it can to a connection the loop paused on
// open. The kernel's buffers fill, TCP stops the writer, and the process
// heap does not grow with what the client tries to send. After ResumeRead
// every byte arrives, in order.
//
// The bound: while paused the reactor holds at most one unconsumed read
// (64 KiB) per connection; the rest sits in the kernel (a few MiB of socket
// buffers, not heap). 8 MiB leaves room for the runtime's own noise.
func TestPausedConnectionBoundsMemoryUnderFlood(t *testing.T) {
	guard(t)
	const total = 1 << 30
	const bound = 8 << 20
	var received atomic.Int64
	var corrupt atomic.Bool
	closed := make(chan error, 1)
	conns := make(chan *Conn, 1)
	r := startReactor(t, &funcs{
		open: func(c *Conn) { c.PauseRead(); conns <- c },
		data: func(c *Conn, b []byte) int {
			if !checkStream(received.Load(), b) {
				corrupt.Store(true)
			}
			received.Add(int64(len(b)))
			return len(b)
		},
		close: func(c *Conn, err error) { closed <- err },
	}, "127.0.0.1", "")

	before := heap.InUse()
	client := dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port()))
	var sent atomic.Int64
	writeErr := make(chan error, 1)
	go func() {
		var off int64
		for off < total {
			start := int(off % 251)
			n := min(int64(len(pattern)-start), total-off)
			w, err := client.Write(pattern[start : start+int(n)])
			off += int64(w)
			sent.Store(off)
			if err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	c := <-conns

	// Wait until the writer is stuck: no progress for 300 ms.
	var last int64 = -1
	deadline := time.Now().Add(30 * time.Second)
	for {
		time.Sleep(300 * time.Millisecond)
		s := sent.Load()
		if s == last {
			break
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("writer never stalled: %d bytes sent to a paused connection", s)
		}
	}
	if last >= total/2 {
		t.Fatalf("paused connection took %d bytes", last)
	}
	if got := received.Load(); got > 0 {
		t.Fatalf("handler got %d bytes while paused", got)
	}
	growth := int64(heap.InUse()) - int64(before)
	t.Logf("writer stalled after %d bytes; heap growth %d bytes", last, growth)
	if growth > bound {
		t.Fatalf("heap grew by %d bytes while paused (bound %d)", growth, bound)
	}

	onLoop(t, r, func() { c.ResumeRead() })
	select {
	case err := <-writeErr:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(120 * time.Second):
		t.Fatalf("writer did not finish after resume: sent %d received %d", sent.Load(), received.Load())
	}
	client.Close()
	select {
	case err := <-closed:
		if !errors.Is(err, ErrPeerClosed) || err.Error() != "peer closed the connection" {
			t.Errorf("close cause: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no close; received %d of %d", received.Load(), total)
	}
	if got := received.Load(); got != total {
		t.Fatalf("received %d bytes, want %d", got, total)
	}
	if corrupt.Load() {
		t.Fatal("bytes arrived corrupted or out of order")
	}
}

// TestPauseResumeCyclesLoseNothing pauses inside OnData after every chunk,
// keeping part of it unconsumed, and resumes from a closure: every byte
// still arrives exactly once and in order.
func TestPauseResumeCyclesLoseNothing(t *testing.T) {
	guard(t)
	const total = 8 << 20
	var received int64 // loop-owned
	var cycles int
	done := make(chan struct{})
	r := startReactor(t, &funcs{
		data: func(c *Conn, b []byte) int {
			n := min(len(b), 1000+int(received%7000)) // consume only part
			if !checkStream(received, b[:n]) {
				t.Error("corrupt or reordered bytes")
			}
			received += int64(n)
			if received == total {
				close(done)
				return n
			}
			c.PauseRead()
			cycles++
			switch {
			case cycles%10 == 9: // long enough for the writer to force a detach
				c.Reactor().AfterFunc(20*time.Millisecond, c.ResumeRead)
			case cycles%2 == 0: // short pauses stay soft
				_ = c.Reactor().Submit(c.ResumeRead)
			default:
				c.Reactor().AfterFunc(time.Millisecond, c.ResumeRead)
			}
			return n
		},
	}, "127.0.0.1", "")
	client := dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port()))
	go func() {
		var off int
		for off < total {
			start := off % 251
			n := min(len(pattern)-start, total-off)
			w, err := client.Write(pattern[start : start+n])
			off += w
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		var got int64
		onLoop(t, r, func() { got = received })
		t.Fatalf("stalled at %d of %d bytes", got, total)
	}
	onLoop(t, r, func() {
		t.Logf("%d pause/resume cycles, %d detached the socket", cycles, r.detaches)
		if r.detaches == 0 {
			t.Error("no pause detached the socket: the re-enroll path went untested")
		}
	})
}

// TestBufferedWritesDrainInOrder writes far more than the kernel takes to a
// client that is not reading yet; the rest is buffered and flushed when the
// client reads, then OnDrain fires.
func TestBufferedWritesDrainInOrder(t *testing.T) {
	guard(t)
	const total = 16 << 20
	drained := make(chan int, 4)
	r := startReactor(t, &funcs{
		open: func(c *Conn) {
			for off := 0; off < total; {
				start := off % 251
				n := min(len(pattern)-start, total-off, 64<<10)
				if err := c.Writev([][]byte{pattern[start : start+n/2], nil, pattern[start+n/2 : start+n]}); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				off += n
			}
			if c.Buffered() == 0 {
				t.Error("kernel took 16 MiB at once; test proves nothing")
			}
		},
		drain: func(c *Conn) { drained <- c.Buffered() },
	}, "127.0.0.1", "")
	client := dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port()))
	time.Sleep(100 * time.Millisecond)
	_ = client.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 256<<10)
	var off int64
	for off < total {
		n, err := client.Read(buf)
		if !checkStream(off, buf[:n]) {
			t.Fatalf("corrupt bytes at %d", off)
		}
		off += int64(n)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	select {
	case left := <-drained:
		if left != 0 {
			t.Fatalf("OnDrain with %d bytes still buffered", left)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnDrain never called")
	}
}

func TestPeerResetAndHalfCloseGiveOneCloseEach(t *testing.T) {
	guard(t)
	type ev struct {
		c   *Conn
		err error
	}
	closes := make(chan ev, 10)
	r := startReactor(t, &funcs{close: func(c *Conn, err error) { closes <- ev{c, err} }}, "127.0.0.1", "")
	addr := "127.0.0.1:" + strconv.Itoa(r.Port())
	bystander := dialTCP(t, "127.0.0.1:"+strconv.Itoa(startReactor(t, echoHandler(), "127.0.0.1", "").Port()))

	reset := dialTCP(t, addr)
	_, _ = reset.Write([]byte("some bytes"))
	time.Sleep(20 * time.Millisecond)
	_ = reset.(*net.TCPConn).SetLinger(0)
	reset.Close()

	half := dialTCP(t, addr)
	_ = half.(*net.TCPConn).CloseWrite()

	seen := map[*Conn]int{}
	for i := 0; i < 2; i++ {
		select {
		case e := <-closes:
			if !errors.Is(e.err, ErrPeerClosed) {
				t.Errorf("close cause %v, want ErrPeerClosed", e.err)
			}
			seen[e.c]++
		case <-time.After(10 * time.Second):
			t.Fatal("missing close event")
		}
	}
	select {
	case e := <-closes:
		t.Fatalf("extra close event: %v", e.err)
	case <-time.After(100 * time.Millisecond):
	}
	if len(seen) != 2 {
		t.Fatalf("close events for %d connections, want 2", len(seen))
	}
	// The half-closed peer sees our FIN.
	_ = half.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := half.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("half-closed peer read: %v, want EOF", err)
	}
	roundTrip(t, bystander, []byte("still here"))
}

// TestPauseAndResumeWithinOnDataDeliversTheRest: a handler that pauses,
// consumes part of the data and resumes before returning (it freed what
// it waited for) gets the rest at once, without the peer sending more.
func TestPauseAndResumeWithinOnDataDeliversTheRest(t *testing.T) {
	guard(t)
	got := make(chan string, 10)
	r := startReactor(t, &funcs{data: func(c *Conn, b []byte) int {
		c.PauseRead()
		n := min(len(b), 3)
		got <- string(b[:n])
		c.ResumeRead()
		return n
	}}, "127.0.0.1", "")
	client := dialTCP(t, "127.0.0.1:"+strconv.Itoa(r.Port()))
	if _, err := client.Write([]byte("abcdefgh")); err != nil {
		t.Fatal(err)
	}
	var all string
	for all != "abcdefgh" {
		select {
		case s := <-got:
			all += s
		case <-time.After(5 * time.Second):
			t.Fatalf("stalled with %q delivered", all)
		}
	}
}
