package perf

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// tcpPingPong is the raw-TCP baseline: one connection to a TCP echo, size
// bytes written and read back, one round trip at a time.
type tcpPingPong struct {
	conn     net.Conn
	out, in  []byte
	stall    time.Duration
	peerAddr string
}

func dialTCPPingPong(ctx context.Context, addr string, size int, stall time.Duration) (*tcpPingPong, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Go sets TCP_NODELAY on TCP connections by default, as chirp does.
	return &tcpPingPong{conn: conn, out: payload(size), in: make([]byte, size), stall: stall, peerAddr: addr}, nil
}

func (p *tcpPingPong) Close() error { return p.conn.Close() }

// begin starts a timed run of d: the connection fails if the peer stalls
// for longer than the stall time past its end.
func (p *tcpPingPong) begin(d time.Duration) (start, end time.Time, err error) {
	start = time.Now()
	end = start.Add(d)
	return start, end, p.conn.SetDeadline(end.Add(p.stall))
}

// run does round trips for d (or n of them when n > 0).
func (p *tcpPingPong) run(ctx context.Context, d time.Duration, n int64) (Outcome, error) {
	var out Outcome
	start, end, err := p.begin(d)
	if err != nil {
		return out, err
	}
	for i := int64(0); n <= 0 || i < n; i++ {
		if _, err := p.conn.Write(p.out); err != nil {
			return out, fmt.Errorf("raw TCP to %s: %w", p.peerAddr, err)
		}
		if _, err := io.ReadFull(p.conn, p.in); err != nil {
			return out, fmt.Errorf("raw TCP from %s: %w", p.peerAddr, err)
		}
		now := time.Now()
		if n <= 0 && !now.Before(end) {
			break
		}
		out.Passes++
		out.Elapsed = now.Sub(start)
		if i&1023 == 0 && ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	if !bytes.Equal(p.in, p.out) {
		return out, fmt.Errorf("%w: raw TCP echo from %s", ErrBadEcho, p.peerAddr)
	}
	return out, nil
}

// tcpStream is the pipelined raw-TCP baseline: size bytes at a time to a
// TCP echo, window of them in flight, the echoes read back as they come; a
// pass is one payload there and back. The writer writes each payload on its
// own (no batching: that is what chirp adds). The reader reads small
// payloads through a bufio.Reader, as idiomatic Go does, so one read system
// call takes every echo that arrived; payloads of 16 KiB and more straight
// into their buffer, which saves a copy.
type tcpStream struct {
	*tcpPingPong
	window int
	r      io.Reader // lives as long as the connection: nothing stays buffered between runs
}

func dialTCPStream(ctx context.Context, addr string, size, window int, stall time.Duration) (*tcpStream, error) {
	p, err := dialTCPPingPong(ctx, addr, size, stall)
	if err != nil {
		return nil, err
	}
	st := &tcpStream{tcpPingPong: p, window: window, r: p.conn}
	if size < 16<<10 {
		st.r = bufio.NewReaderSize(p.conn, 64<<10)
	}
	return st, nil
}

// run streams for d: a writer keeps window payloads in flight while this
// goroutine reads the echoes back.
func (p *tcpStream) run(ctx context.Context, d time.Duration, _ int64) (Outcome, error) {
	var out Outcome
	start, end, err := p.begin(d)
	if err != nil {
		return out, err
	}
	credits := make(chan struct{}, p.window)
	for i := 0; i < p.window; i++ {
		credits <- struct{}{}
	}
	stop := make(chan struct{})
	written := make(chan int64, 1)
	werr := make(chan error, 1)
	go func() {
		var n int64
		defer func() { written <- n }()
		for {
			select {
			case <-stop:
				return
			case <-credits:
			}
			if _, err := p.conn.Write(p.out); err != nil {
				werr <- fmt.Errorf("raw TCP to %s: %w", p.peerAddr, err)
				return
			}
			n++
		}
	}()
	var got int64
	for {
		if _, err = io.ReadFull(p.r, p.in); err != nil {
			err = fmt.Errorf("raw TCP from %s: %w", p.peerAddr, err)
			break
		}
		got++
		now := time.Now()
		if !now.Before(end) || ctx.Err() != nil {
			break
		}
		out.Passes, out.Elapsed = got, now.Sub(start)
		credits <- struct{}{}
	}
	close(stop)
	// Drain what is still in flight, so the connection can be used again.
	n := <-written
	select {
	case e := <-werr:
		if err == nil {
			err = e
		}
	default:
	}
	for ; got < n && err == nil; got++ {
		if _, e := io.ReadFull(p.r, p.in); e != nil {
			err = fmt.Errorf("raw TCP from %s: %w", p.peerAddr, e)
		}
	}
	if err == nil && !bytes.Equal(p.in, p.out) {
		err = fmt.Errorf("%w: raw TCP echo from %s", ErrBadEcho, p.peerAddr)
	}
	if err == nil {
		err = ctx.Err()
	}
	return out, err
}

// chanPingPong is the in-process baseline: a value to another goroutine
// over a channel and back over another, one round trip at a time.
type chanPingPong struct {
	ping, pong chan int
}

func newChanPingPong() *chanPingPong {
	p := &chanPingPong{ping: make(chan int), pong: make(chan int)}
	go func() {
		for v := range p.ping {
			p.pong <- v
		}
		close(p.pong)
	}()
	return p
}

func (p *chanPingPong) Close() error {
	close(p.ping)
	for range p.pong {
	}
	return nil
}

// run does round trips for d (or n of them when n > 0). The clock is read
// every 256 round trips only: a round trip costs less than reading it.
func (p *chanPingPong) run(ctx context.Context, d time.Duration, n int64) (Outcome, error) {
	var out Outcome
	start := time.Now()
	end := start.Add(d)
	for i := int64(1); ; i++ {
		p.ping <- int(i)
		if v := <-p.pong; v != int(i) {
			return out, fmt.Errorf("%w: channel echo %d, sent %d", ErrBadEcho, v, i)
		}
		if n > 0 {
			if i == n {
				out.Passes, out.Elapsed = n, time.Since(start)
				return out, nil
			}
			continue
		}
		if i&255 == 0 {
			now := time.Now()
			if !now.Before(end) {
				return out, nil
			}
			out.Passes, out.Elapsed = i, now.Sub(start)
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
		}
	}
}

// payload is size bytes of printable text, so tools that show data (listen,
// dissect) show it readably.
func payload(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, size)
	for i := range b {
		b[i] = alphabet[i%len(alphabet)]
	}
	return b
}
