package node

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
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
	echoBurst(t, p, 16)

	// The next burst of 16, held at its 6th message: the replies to the
	// first quarter are on their way meanwhile, and no more.
	expectHeldBurst(t, p, g, 4, "quarters of 16")
}

// TestWorkerRepliesLeaveInQuarters: with handler workers, a burst's
// replies leave in quarters too. Between the parts the loop lets the
// workers it handed the part to run on its thread (one P here, as on a
// machine whose other CPUs are busy), takes their sends and writes them,
// before it decodes the next part. Otherwise the workers ran only once the
// loop was done with the whole read, and all replies left together.
//
// A yield can come back before the workers ran (the scheduler takes from
// the global run queue first on one schedule in 61), so the test wants
// three bursts of five split, not all.
func TestWorkerRepliesLeaveInQuarters(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	type seen struct{ in, out uint64 } // the node's counts when a handler ran
	var mu sync.Mutex
	saw := map[byte]seen{} // by the message's index in its burst
	h := HandlerFunc(func(m *Message) {
		st := m.Node().Stats()
		mu.Lock()
		saw[m.Identity[0]] = seen{st.MessagesIn, st.MessagesOut}
		mu.Unlock()
		_ = m.Node().SendAsync(m, nil)
	})
	n := startNode(t, Config{Asynchronous: true, Receive: ReceiveWorkers, Workers: 4, Handler: h})
	p := dialRawPeer(t, n)
	p.expectHandshake(n)
	echoBurst(t, p, 16) // the connection splits from now on

	split := 0
	var last string
	for range 5 {
		before := n.Stats()
		echoBurst(t, p, 16)
		mu.Lock()
		first, fifth := saw[0], saw[4]
		mu.Unlock()
		in, out := first.in-before.MessagesIn, fifth.out-before.MessagesOut
		if in == 4 && out >= 4 {
			split++
		}
		last = fmt.Sprintf("the first message's handler ran after %d messages of the burst were decoded "+
			"(want 4, a quarter), the fifth's after %d replies were written (want the first quarter's 4)", in, out)
	}
	if split < 3 {
		t.Fatalf("%d of 5 bursts of 16 left in quarters, want 3 or more; in the last one %s", split, last)
	}
}

// echoBurst sends a burst of k frames in one write and reads the k replies.
func echoBurst(t *testing.T, p *rawPeer, k int) {
	t.Helper()
	got := replies(p, k)
	burst(p, k, -1)
	for i := 0; i < k; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of %d: only %d replies", k, i)
		}
	}
}

// expectHeldBurst sends a burst of 16 held at its 6th message and checks
// that exactly want replies leave while it is held (why says which part
// size that means); then it lets the burst finish.
func expectHeldBurst(t *testing.T, p *rawPeer, g *gatedEcho, want int, why string) {
	t.Helper()
	got := replies(p, 16)
	burst(p, 16, 5)
	for i := 0; i < want; i++ {
		select {
		case _, ok := <-got:
			if !ok {
				t.Fatalf("reply stream ended after %d replies", i)
			}
		case <-time.After(rawIOTimeout / 2):
			g.open <- struct{}{}
			t.Fatalf("%d replies, not %d (%s), left while the 6th message of a burst of 16 was being handled", i, want, why)
		}
	}
	select {
	case <-got:
		g.open <- struct{}{}
		t.Fatalf("more than %d replies left while the 6th message of a burst of 16 was being handled: parts smaller than %s", want, why)
	case <-time.After(300 * time.Millisecond):
	}
	g.open <- struct{}{}
	for i := want; i < 16; i++ {
		if _, ok := <-got; !ok {
			t.Fatalf("burst of 16: only %d replies", i)
		}
	}
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

	echoBurst(t, p, 32)
	expectHeldBurst(t, p, g, 0, "parts of 8, after a burst of 32")

	// One message a read, each answered before the next: two windows, as
	// the window in progress began before them.
	for range 2 * burstWindow {
		echoBurst(t, p, 1)
	}
	echoBurst(t, p, 16) // a read of 16 sets the size again
	expectHeldBurst(t, p, g, 4, "quarters of 16, after reads of one message")
}

// TestPipelinedBurstsBeyondTheSlots runs 64 echoes in flight through 16
// slots, plaintext and TLS: bursts are split (splitBurst), reading pauses
// and resumes when slots free up, and a send that finishes during a split's
// flush resumes a connection whose decode flushes again. That nested flush
// once crashed the echo node. With handler workers, the loop also yields to
// them and takes their sends between the parts (handOver), inside the TLS
// session's Feed when encrypted.
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
		for _, mode := range []ReceiveMode{ReceiveInline, ReceiveWorkers} {
			t.Run(fmt.Sprintf("%s/%v", tc.name, mode), func(t *testing.T) {
				r := newPassRigWith(t, mode, 64, tc.cfg, tc.at)
				passes := 20000
				if mode == ReceiveWorkers {
					passes = 100000 // nested hand-overs are rarer: a run of 20000 met one about every other time
				}
				if err := r.run(passes); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
