package node

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/gochirp/chirp/codec"
)

// gatedEcho is an inline echo whose handler, for the message whose data is
// "gate", waits (on the loop) until the test opens the gate or 5 s passed.
type gatedEcho struct{ open chan struct{} }

func (g *gatedEcho) ServeChirp(m *Message) {
	if bytes.Equal(m.Data, []byte("gate")) {
		select {
		case <-g.open:
		case <-time.After(rawIOTimeout):
		}
	}
	_ = m.Node().SendOnLoop(m, nil)
}

// burst writes k frames in one write; the one at gate (if 0 <= gate < k)
// carries "gate".
func burst(p *rawPeer, k, gate int) {
	p.t.Helper()
	var b []byte
	for i := 0; i < k; i++ {
		data := []byte("echo")
		if i == gate {
			data = []byte("gate")
		}
		var id codec.Identity
		id[0], id[1] = byte(i), 0xb5
		b = append(b, p.frame(0, id, nil, data)...)
	}
	p.write(b)
}

// replies reads k frames into a channel, so the test can watch them
// arrive while the node's loop is held by the gate.
func replies(p *rawPeer, k int) <-chan rawFrame {
	ch := make(chan rawFrame, k)
	go func() {
		defer close(ch)
		var hdr [codec.FrameHeaderSize]byte
		for i := 0; i < k; i++ {
			_ = p.conn.SetReadDeadline(time.Now().Add(2 * rawIOTimeout))
			if _, err := io.ReadFull(p.conn, hdr[:]); err != nil {
				return
			}
			h, err := codec.ParseFrameHeader(hdr[:])
			if err != nil {
				return
			}
			body := make([]byte, int(h.HeaderLen)+int(h.DataLen))
			if _, err := io.ReadFull(p.conn, body); err != nil {
				return
			}
			ch <- rawFrame{FrameHeader: h, Data: body[h.HeaderLen:]}
		}
	}()
	return ch
}

// TestBurstRepliesLeaveInQuarters pins the pipelining rule (splitBurst):
// on a connection that carried 16 messages in one read, the replies to a
// burst are written after each quarter of it, while the rest is still
// being handled; on one that never did, only at the end of the read.
func TestBurstRepliesLeaveInQuarters(t *testing.T) {
	g := &gatedEcho{open: make(chan struct{})}
	n := startNode(t, Config{Asynchronous: true, Receive: ReceiveInline, Handler: g})
	p := dialRawPeer(t, n)
	p.expectHandshake(n)

	// Bursts of 8 do not split: while the 8th is held, nothing came back.
	got := replies(p, 8)
	burst(p, 8, 7)
	select {
	case f := <-got:
		t.Fatalf("reply %v came back while the burst of 8 was still being handled", f.Identity)
	case <-time.After(300 * time.Millisecond):
	}
	g.open <- struct{}{}
	for i := 0; i < 8; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of 8: only %d replies", i)
		}
	}

	// A burst of 16 in one write: the connection now splits.
	got = replies(p, 16)
	burst(p, 16, -1)
	for i := 0; i < 16; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of 16: only %d replies", i)
		}
	}

	// The next burst of 16, held at its 6th message: the replies to the
	// first quarter are on their way meanwhile, and no more.
	got = replies(p, 16)
	burst(p, 16, 5)
	for i := 0; i < 4; i++ {
		select {
		case _, ok := <-got:
			if !ok {
				t.Fatalf("reply stream ended after %d replies", i)
			}
		case <-time.After(rawIOTimeout / 2):
			g.open <- struct{}{}
			t.Fatalf("%d replies, not 4, left while the 6th message of a burst of 16 was being handled", i)
		}
	}
	select {
	case <-got:
		t.Fatal("5 replies left while the 6th message was being handled: parts smaller than a quarter")
	case <-time.After(300 * time.Millisecond):
	}
	g.open <- struct{}{}
	for i := 4; i < 16; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of 16: only %d replies", i)
		}
	}
}

// heldBurstReplies sends a burst of 16 held at its 6th message and counts
// the replies that leave while it is held, then lets it finish.
func heldBurstReplies(t *testing.T, p *rawPeer, g *gatedEcho) int {
	t.Helper()
	got := replies(p, 16)
	burst(p, 16, 5)
	n := 0
	for quiet := false; !quiet; {
		select {
		case _, ok := <-got:
			if !ok {
				t.Fatalf("reply stream ended after %d replies", n)
			}
			n++
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	g.open <- struct{}{}
	for i := n; i < 16; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of 16: only %d replies", i)
		}
	}
	return n
}

// TestBurstSplitFollowsTheTraffic: a connection that once carried a burst
// of 32 splits bursts in parts of 8, so a burst of 16 leaves whole; after
// a window of reads that brought less than half of that, it takes the
// traffic's new size and splits bursts of 16 in quarters again.
func TestBurstSplitFollowsTheTraffic(t *testing.T) {
	g := &gatedEcho{open: make(chan struct{})}
	n := startNode(t, Config{Asynchronous: true, Receive: ReceiveInline, Handler: g, MaxSlots: 32})
	p := dialRawPeer(t, n)
	p.expectHandshake(n)

	got := replies(p, 32)
	burst(p, 32, -1)
	for i := 0; i < 32; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of 32: only %d replies", i)
		}
	}
	if k := heldBurstReplies(t, p, g); k != 0 {
		t.Fatalf("after a burst of 32, %d replies left while the 6th message of 16 was held, want 0 (parts of 8)", k)
	}

	// One message a read, each answered before the next: two windows, as
	// the window in progress began before them.
	for i := 0; i < 2*burstWindow; i++ {
		got := replies(p, 1)
		burst(p, 1, -1)
		if _, ok := <-got; !ok {
			t.Fatalf("single message %d: no reply", i)
		}
	}
	got = replies(p, 16)
	burst(p, 16, -1) // a read of 16 sets the size again
	for i := 0; i < 16; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of 16: only %d replies", i)
		}
	}
	if k := heldBurstReplies(t, p, g); k != 4 {
		t.Fatalf("after %d reads of one message, %d replies left while the 6th message of 16 was held, want 4 (quarters)", 2*burstWindow, k)
	}
}

// TestPipelinedBurstsBeyondTheSlots runs 64 echoes in flight through 16
// slots, plaintext and TLS: bursts are split (splitBurst), reading pauses
// and resumes when slots free up, and a send that finishes during a split's
// flush resumes a connection whose decode flushes again. That nested flush
// once crashed the echo node.
func TestPipelinedBurstsBeyondTheSlots(t *testing.T) {
	chain := chainFiles(t, "pipeline CA", 1)[0]
	for _, tc := range []struct {
		name string
		cfg  Config
		at   func(*Node) string
	}{
		{"plaintext", testConfig(true, nil), addr},
		{"tls", tlsConfig(true, nil, chain), func(n *Node) string { return at("127.0.0.2", n) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newPassRigWith(t, ReceiveInline, 64, tc.cfg, tc.at)
			if err := r.run(20000); err != nil {
				t.Fatal(err)
			}
		})
	}
}
