package node

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/internal/heap"
)

// expectBadInputClosesOnlyOffender starts an asynchronous echo node, opens
// a healthy raw peer and an offending one, lets bad write its bytes after
// its handshake, and checks that the node closes the offender, counts a
// protocol error, and keeps echoing for the healthy peer.
func expectBadInputClosesOnlyOffender(t *testing.T, cfg Config, bad func(p *rawPeer)) *Node {
	t.Helper()
	n, _ := startEchoNode(t, cfg)
	good := dialRawPeer(t, n)
	good.expectHandshake(n)
	good.exchange(nil, []byte("before"))

	before := n.Stats().ProtocolErrors
	p := dialRawPeer(t, n)
	p.expectHandshake(n)
	bad(p)
	p.expectClosed(2 * time.Second)
	eventually(t, 2*time.Second, "ProtocolErrors to grow by 1", func() bool {
		return n.Stats().ProtocolErrors == before+1
	})

	good.exchange([]byte("h"), []byte("after"))
	if st := n.Stats(); st.ProtocolErrors != before+1 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
	return n
}

func TestNodeClosesConnectionOnAckWithBody(t *testing.T) {
	expectBadInputClosesOnlyOffender(t, testConfig(true, nil), func(p *rawPeer) {
		p.send(codec.Ack, randomIdentity(), nil, []byte("hello"))
	})
}

func TestNodeClosesConnectionOnNoopWithBody(t *testing.T) {
	expectBadInputClosesOnlyOffender(t, testConfig(true, nil), func(p *rawPeer) {
		p.send(codec.Noop, codec.Identity{}, []byte("hdr"), nil)
	})
}

func TestNodeClosesConnectionOnNoopWithReqAck(t *testing.T) {
	expectBadInputClosesOnlyOffender(t, testConfig(true, nil), func(p *rawPeer) {
		p.send(codec.Noop|codec.ReqAck, codec.Identity{}, nil, nil)
	})
}

func TestNodeClosesConnectionOnAckWithReqAck(t *testing.T) {
	expectBadInputClosesOnlyOffender(t, testConfig(true, nil), func(p *rawPeer) {
		p.send(codec.Ack|codec.ReqAck, randomIdentity(), nil, nil)
	})
}

func TestNodeClosesConnectionOnFrameAboveMaxMessageSize(t *testing.T) {
	cfg := testConfig(true, nil)
	cfg.MaxMessageSize = 1024
	n := expectBadInputClosesOnlyOffender(t, cfg, func(p *rawPeer) {
		// 5 + 1020 = 1025: one byte too many. Only the 27-byte header is
		// sent; the node must not wait for the body.
		p.sendRawHeader(codec.FrameHeader{Identity: randomIdentity(), HeaderLen: 5, DataLen: 1020})
	})
	// Exactly the limit is fine.
	good := dialRawPeer(t, n)
	good.expectHandshake(n)
	good.exchange(make([]byte, 24), make([]byte, 1000))
}

// TestNodeSumsFrameLengthsIn64Bits: libchirp's 32-bit sum lets
// header_len=1, data_len=0xFFFFFFFF pass; the Go node must refuse it.
func TestNodeSumsFrameLengthsIn64Bits(t *testing.T) {
	cfg := testConfig(true, nil)
	cfg.MaxMessageSize = 1024
	expectBadInputClosesOnlyOffender(t, cfg, func(p *rawPeer) {
		p.sendRawHeader(codec.FrameHeader{Identity: randomIdentity(), HeaderLen: 1, DataLen: math.MaxUint32})
	})
}

// TestNodeIsNotStalledByPeerSilentAfterHandshake: a peer that handshakes and
// then says nothing, or stops in the middle of a frame header, costs its own
// connection only.
func TestNodeIsNotStalledByPeerSilentAfterHandshake(t *testing.T) {
	n, _ := startEchoNode(t, testConfig(true, nil))
	silent := dialRawPeer(t, n)
	silent.expectHandshake(n)
	halfway := dialRawPeer(t, n)
	halfway.expectHandshake(n)
	halfway.write(halfway.frame(0, randomIdentity(), nil, []byte("cut"))[:10])

	good := dialRawPeer(t, n)
	good.expectHandshake(n)
	for i := 0; i < 10; i++ {
		good.exchange(nil, []byte{byte(i)})
	}
	silent.expectSilence(50 * time.Millisecond)
	halfway.expectSilence(10 * time.Millisecond)
	if st := n.Stats(); st.ProtocolErrors != 0 || st.Connections != 3 || st.MessagesIn != 10 {
		t.Fatalf("stats %+v", st)
	}
}

// TestNodeClosesAcceptedConnectionWithoutHandshake: libchirp keeps such a
// connection forever; the Go node's GC closes it once it is older than the
// connect timeout.
func TestNodeClosesAcceptedConnectionWithoutHandshake(t *testing.T) {
	cfg := testConfig(true, nil)
	cfg.Timeout = 200 * time.Millisecond // connect timeout 400ms
	cfg.ReuseTime = 500 * time.Millisecond
	n := startNode(t, cfg)
	start := time.Now()
	p := connectRaw(t, n)
	p.expectHandshake(n) // the node does not wait for ours
	p.expectClosed(3 * time.Second)
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("closed after %v, before the connect timeout", el)
	}
	eventually(t, time.Second, "no connections", func() bool { return n.Stats().Connections == 0 })
}

// TestPausedConnectionBoundsMemoryAndDeliversInOrder: a handler that holds
// every slot pauses the connection; the flooding peer is then held back by
// TCP instead of by the node's heap, and after the handler releases,
// every message arrives exactly once and in order.
func TestPausedConnectionBoundsMemoryAndDeliversInOrder(t *testing.T) {
	const (
		dataSize = 1024
		floodFor = 3 * time.Second
		perWrite = 16
		frameLen = codec.FrameHeaderSize + dataSize
	)
	held := make(chan *Message, 64)
	cfg := testConfig(true, HandlerFunc(func(m *Message) { held <- m }))
	cfg.MaxSlots = 4
	cfg.ManualRelease = true
	cfg.Workers = 1 // the handler sees messages in arrival order
	n := startNode(t, cfg)

	base := heap.InUse()

	p := dialRawPeer(t, n)
	p.expectHandshake(n)

	var written atomic.Int64 // bytes the peer got into the socket
	floodOver := make(chan struct{})
	type result struct {
		frames uint64
		err    error
	}
	res := make(chan result, 1)
	go func() {
		// One goroutine owns p's writes from here on; it must not call t.
		_ = p.conn.SetWriteDeadline(time.Now().Add(floodFor))
		buf := make([]byte, 0, perWrite*frameLen)
		data := make([]byte, dataSize)
		var seq uint64
		for {
			buf = buf[:0]
			for i := 0; i < perWrite; i++ {
				binary.BigEndian.PutUint64(data, seq)
				var id codec.Identity
				binary.BigEndian.PutUint64(id[:], seq)
				buf = append(buf, p.frame(0, id, nil, data)...)
				seq++
			}
			k, err := p.conn.Write(buf)
			written.Add(int64(k))
			if err == nil {
				continue
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				close(floodOver)
				res <- result{err: err}
				return
			}
			close(floodOver)
			// Finish the frame cut by the deadline; it goes through once
			// the node reads again.
			if cut := k % frameLen; cut != 0 {
				_ = p.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
				k2, err := p.conn.Write(buf[k : k+frameLen-cut])
				written.Add(int64(k2))
				if err != nil {
					res <- result{err: err}
					return
				}
			}
			res <- result{frames: uint64(written.Load()) / frameLen}
			return
		}
	}()

	eventually(t, 5*time.Second, "the connection to pause", func() bool { return n.Stats().PausedConnections == 1 })
	// Wait until TCP holds the peer back: nothing more goes into the socket.
	var last int64 = -1
	eventually(t, floodFor, "the peer to block", func() bool {
		w := written.Load()
		if w == last {
			return true
		}
		last = w
		time.Sleep(200 * time.Millisecond)
		return false
	})
	checkHeap := func(when string) {
		t.Helper()
		h := heap.InUse()
		if h > base && h-base > 16<<20 {
			t.Fatalf("%s: heap grew by %d MiB (peer wrote %d KiB)", when, (h-base)>>20, written.Load()>>10)
		}
		t.Logf("%s: heap %+d KiB", when, (int64(h)-int64(base))>>10)
	}
	checkHeap("peer blocked")
	if st := n.Stats(); st.PausedConnections != 1 || st.SlotsInUse != 4 || len(held) != 4 {
		t.Fatalf("while paused: stats %+v, handler holds %d", st, len(held))
	}
	select {
	case <-floodOver:
	case <-time.After(floodFor + 5*time.Second):
		t.Fatal("flood did not end")
	}
	checkHeap("end of flood")
	t.Logf("peer wrote %d KiB before it was held back", written.Load()>>10)

	// Release one at a time, checking order, until the peer's count is in.
	var next uint64
	total := uint64(math.MaxUint64)
	timeout := time.After(60 * time.Second)
	for next < total {
		select {
		case m := <-held:
			if len(m.Data) != dataSize {
				t.Fatalf("message %d has %d data bytes", next, len(m.Data))
			}
			if seq := binary.BigEndian.Uint64(m.Data); seq != next {
				t.Fatalf("got message %d, want %d", seq, next)
			}
			if err := m.Release(); err != nil {
				t.Fatalf("release %d: %v", next, err)
			}
			next++
		case r := <-res:
			if r.err != nil {
				t.Fatalf("peer write: %v", r.err)
			}
			total = r.frames
			if next > total {
				t.Fatalf("delivered %d, peer wrote only %d", next, total)
			}
		case <-timeout:
			t.Fatalf("delivered %d of %d", next, total)
		}
	}
	select {
	case m := <-held:
		t.Fatalf("extra message %d after all %d", binary.BigEndian.Uint64(m.Data), total)
	case <-time.After(100 * time.Millisecond):
	}
	eventually(t, 2*time.Second, "all slots free", func() bool {
		st := n.Stats()
		return st.SlotsInUse == 0 && st.PausedConnections == 0
	})
	if st := n.Stats(); st.MessagesIn != total || st.ProtocolErrors != 0 || st.Pauses == 0 {
		t.Fatalf("stats %+v, peer wrote %d", st, total)
	}
	t.Logf("%d messages, %d pauses", total, n.Stats().Pauses)
}

// TestSyncSendToRemoteThatNeverReleasesTimesOut: the ACK never comes, so the
// send fails with ErrTimeout after about Timeout, and the sender still talks
// to healthy nodes.
func TestSyncSendToRemoteThatNeverReleasesTimesOut(t *testing.T) {
	keep := make(chan *Message, 16)
	cfg := testConfig(false, HandlerFunc(func(m *Message) { keep <- m }))
	cfg.ManualRelease = true
	hoarder := startNode(t, cfg)
	healthy := startNode(t, testConfig(false, nil))
	cfg = testConfig(false, nil)
	cfg.Timeout = 300 * time.Millisecond
	sender := startNode(t, cfg)

	m, _ := NewMessage(addr(hoarder), []byte("never released"))
	start := time.Now()
	err := sender.Send(ctxT(t), m)
	el := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if el < cfg.Timeout || el > cfg.Timeout+700*time.Millisecond {
		t.Fatalf("timed out after %v, timeout %v", el, cfg.Timeout)
	}
	if len(keep) != 1 {
		t.Fatalf("hoarder holds %d messages, want 1", len(keep))
	}
	if st := sender.Stats(); st.Timeouts != 1 || st.SendErrors != 1 {
		t.Fatalf("sender stats %+v", st)
	}

	for i := 0; i < 3; i++ {
		m, _ := NewMessage(addr(healthy), []byte("still fine"))
		if err := sender.Send(ctxT(t), m); err != nil {
			t.Fatalf("send to healthy node: %v", err)
		}
	}
	if st := healthy.Stats(); st.MessagesIn != 3 || st.AcksOut != 3 {
		t.Fatalf("healthy stats %+v", st)
	}
}

// TestIdleConnectionClosedAfterReuseTimeThenReconnects: an idle connection
// is closed by the GC after the reuse time and within ReuseTime + Timeout
// (libchirp's schedule takes up to twice the reuse time), and the next send
// dials a new one without the caller noticing.
func TestIdleConnectionClosedAfterReuseTimeThenReconnects(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.Timeout = 100 * time.Millisecond
	cfg.ReuseTime = 1500 * time.Millisecond
	got := make(chan string, 4)
	rxCfg := cfg
	rxCfg.Handler = HandlerFunc(func(m *Message) { got <- string(m.Data) })
	rx := startNode(t, rxCfg)
	tx := startNode(t, cfg)

	send := func(s string) {
		t.Helper()
		m, _ := NewMessage(addr(rx), []byte(s))
		if err := tx.Send(ctxT(t), m); err != nil {
			t.Fatalf("send %q: %v", s, err)
		}
		select {
		case g := <-got:
			if g != s {
				t.Fatalf("got %q, want %q", g, s)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%q not received", s)
		}
	}
	send("first")
	if c := tx.Stats().Connections; c != 1 {
		t.Fatalf("%d connections after the first send", c)
	}
	idle := time.Now()
	eventually(t, 5*time.Second, "the idle connection to close", func() bool {
		return tx.Stats().Connections == 0 && rx.Stats().Connections == 0
	})
	el := time.Since(idle)
	if el < cfg.ReuseTime-50*time.Millisecond {
		t.Fatalf("closed after %v idle, before the reuse time", el)
	}
	// ReuseTime + Timeout, plus slack for a loaded machine's timers.
	if limit := cfg.ReuseTime + cfg.Timeout + 300*time.Millisecond; el > limit {
		t.Fatalf("closed after %v idle, beyond %v", el, limit)
	}
	send("second")
	if st := tx.Stats(); st.Connections != 1 || st.SendErrors != 0 || st.MessagesOut != 2 {
		t.Fatalf("sender stats %+v", st)
	}
}
