package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/internal/childproc"
	"github.com/gochirp/chirp/internal/heap"
	"github.com/gochirp/chirp/tlsconn"
)

// The attacks of issue 14, kept as regression tests: each one ran against
// a node until the node was hardened against it, and fails if the
// hardening goes.

// floodResult is what an ACK flood achieved.
type floodResult struct {
	frames  int64 // empty REQ_ACK frames the kernel took from the attacker
	closed  int   // times the node closed the attacker's connection
	blocked bool  // a write of the attacker stalled: the node stopped reading
}

// ackFlood is the attacker of issue 14 part 2: it connects to n on
// 127.0.0.1, handshakes, then writes empty REQ_ACK frames, each asking for
// an ACK, and never reads. When the node closes the connection it
// connects again, until d passed or stop is closed. It runs in its own
// goroutine and does not touch t.
func ackFlood(n *Node, d time.Duration, stop <-chan struct{}) floodResult {
	var res floodResult
	end := time.Now().Add(d)
	var batch []byte
	serial := uint32(1)
	var id codec.Identity
	_, _ = rand.Read(id[:])
	for time.Now().Before(end) {
		c, err := net.DialTimeout("tcp", addr(n), time.Second)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // take as little as the kernel allows
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, err = c.Write(codec.Handshake{Port: 1, Identity: id}.Append(nil))
		for err == nil && time.Now().Before(end) {
			select {
			case <-stop:
				c.Close()
				return res
			default:
			}
			batch = batch[:0]
			for i := 0; i < 256; i++ {
				serial++
				h := codec.FrameHeader{Identity: id, Serial: serial, Type: codec.ReqAck}
				batch = h.Append(batch)
			}
			_ = c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			var k int
			k, err = c.Write(batch)
			res.frames += int64(k / codec.FrameHeaderSize)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				res.blocked = true
				err = nil
			}
		}
		c.Close()
		if err != nil {
			res.closed++
		}
	}
	return res
}

// floodConfig is the node under an ACK flood: Handler nil releases every
// message at once, so ACKs are made as fast as the node can read.
func floodConfig(async bool) Config {
	cfg := testConfig(async, nil)
	cfg.Timeout = 2 * time.Second
	return cfg
}

// TestAckFloodBoundsTheNodesHeap: a peer that asks for ACKs and never reads
// them may make the node owe it only a bounded amount of output: the node
// stops reading it, and closes it when it does not read within Timeout.
// Before, the owed ACKs queued without limit (issue 14 part 2).
func TestAckFloodBoundsTheNodesHeap(t *testing.T) {
	const floodFor = 10 * time.Second
	for _, async := range []bool{false, true} {
		t.Run(modeName(async), func(t *testing.T) {
			n := startNode(t, floodConfig(async))
			base := heap.InUse()
			stop := make(chan struct{})
			done := make(chan floodResult, 1)
			go func() { done <- ackFlood(n, floodFor, stop) }()
			var maxGrowth int64
			paused := false
			for deadline := time.Now().Add(floodFor); time.Now().Before(deadline); {
				time.Sleep(250 * time.Millisecond)
				maxGrowth = max(maxGrowth, int64(heap.InUse())-int64(base))
				paused = paused || n.Stats().PausedConnections > 0
				if maxGrowth > 16<<20 {
					break
				}
			}
			close(stop)
			res := <-done
			t.Logf("flood: %d frames written, connection closed %d times, attacker blocked %v, node paused %v; heap grew by at most %d KiB",
				res.frames, res.closed, res.blocked, paused, maxGrowth>>10)
			if maxGrowth > 16<<20 {
				t.Fatalf("heap grew by %d MiB under the ACK flood, the bound is 16 MiB", maxGrowth>>20)
			}
			if res.frames < 10000 {
				t.Fatalf("the attacker got only %d frames out: no flood", res.frames)
			}
			if !paused {
				t.Error("the node never stopped reading the flooding connection")
			}
			if res.closed == 0 {
				t.Errorf("the node never closed the flooding connection: its writes have no deadline of Timeout (%v)", n.s.timeout)
			}
			// The node still serves an honest peer.
			p := dialRawPeer(t, n)
			p.expectHandshake(n)
			var id codec.Identity
			_, _ = rand.Read(id[:])
			p.send(codec.ReqAck, id, nil, []byte("honest"))
			if f := p.readFrame(); f.Type != codec.Ack || f.Identity != id {
				t.Fatalf("honest peer got %v %v, want its ACK", f.Type, f.Identity)
			}
		})
	}
}

// TestAckFloodLeavesNoHeapBehind: once the attacker is gone, the buffers
// that grew for the flood are given back: the heap is within 2 MiB of its
// baseline within ReuseTime.
func TestAckFloodLeavesNoHeapBehind(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(modeName(async), func(t *testing.T) {
			cfg := floodConfig(async)
			cfg.Timeout = time.Second
			cfg.ReuseTime = 3 * time.Second
			n := startNode(t, cfg)
			// The baseline includes one honest connection, so that what a
			// node keeps for any peer (the remote, pools) is not counted.
			p := dialRawPeer(t, n)
			p.expectHandshake(n)
			p.send(codec.ReqAck, p.id, nil, nil)
			p.readFrame()
			p.conn.Close()
			time.Sleep(100 * time.Millisecond)
			base := heap.InUse()
			res := ackFlood(n, 3*time.Second, nil)
			if res.frames < 10000 {
				t.Fatalf("the attacker got only %d frames out: no flood", res.frames)
			}
			left := time.Now()
			var h uint64
			for time.Since(left) < cfg.ReuseTime {
				if h = heap.InUse(); h <= base+2<<20 {
					t.Logf("heap back to %+d KiB of its baseline %v after the attacker left (%d frames)",
						(int64(h)-int64(base))>>10, time.Since(left).Round(time.Millisecond), res.frames)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			t.Fatalf("heap still %d KiB above its baseline %v after the attacker left", (int64(h)-int64(base))>>10, cfg.ReuseTime)
		})
	}
}

func modeName(async bool) string {
	if async {
		return "async"
	}
	return "sync"
}

// TestAckGoesBackOnTheConnectionItsMessageCameOn: a raw socket from the
// same IP announces the real peer's port and so becomes that remote's
// current connection. The ACKs for the real peer's messages must still go
// back on the real peer's connection, byte for byte as libchirp writes
// them (identity of the message, the next serial, type ACK, no body), and
// none to the impostor (issue 14 part 4).
func TestAckGoesBackOnTheConnectionItsMessageCameOn(t *testing.T) {
	n := startNode(t, testConfig(false, nil))
	real := dialRawPeer(t, n)
	real.expectHandshake(n)
	var serial uint32
	exchange := func(i int) {
		t.Helper()
		var id codec.Identity
		_, _ = rand.Read(id[:])
		real.send(codec.ReqAck, id, nil, []byte("real"))
		f := real.readFrame()
		if i == 0 {
			serial = f.Serial
		} else {
			serial++
		}
		// An ACK as the C capture shows it: identity, serial, data_len 0,
		// header_len 0, type 0x02.
		want := append(append([]byte(nil), id[:]...),
			byte(serial>>24), byte(serial>>16), byte(serial>>8), byte(serial), 0, 0, 0, 0, 0, 0, 0x02)
		if string(f.Wire) != string(want) {
			t.Fatalf("ACK %d on the real peer's connection:\n% x\nwant\n% x", i, f.Wire, want)
		}
	}
	exchange(0)

	spoof := connectRaw(t, n)
	spoof.port = real.port // the impostor claims the real peer's port
	spoof.sendHandshake()
	spoof.expectHandshake(n)
	for i := 1; i <= 5; i++ {
		exchange(i)
	}
	spoof.expectSilence(100 * time.Millisecond)
	if st := n.Stats(); st.AcksOut != 6 || st.MessagesIn != 6 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAckHijackCostsASyncSenderNothing: the same attack against a real
// synchronous sender. Before, the ACKs went to the impostor and every
// send after the spoofed handshake failed with ErrTimeout.
func TestAckHijackCostsASyncSenderNothing(t *testing.T) {
	n := startNode(t, testConfig(false, nil))
	cfg := testConfig(false, nil)
	cfg.Timeout = 500 * time.Millisecond
	sender := startNode(t, cfg)
	send := func() error {
		m, _ := NewMessage(addr(n), []byte("mine"))
		return sender.Send(ctxT(t), m)
	}
	if err := send(); err != nil {
		t.Fatal(err)
	}
	spoof := connectRaw(t, n)
	spoof.port = uint16(sender.Port())
	spoof.sendHandshake()
	spoof.expectHandshake(n)
	timeouts := 0
	for i := 0; i < 10; i++ {
		if err := send(); errors.Is(err, ErrTimeout) {
			timeouts++
		} else if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if timeouts != 0 {
		t.Fatalf("%d of 10 sends timed out: their ACKs went to the impostor", timeouts)
	}
}

// TestDeadRemoteFailsEveryQueuedSendWithinTheBound: 1000 sends queued for
// a port that refuses connections all fail within 2×Timeout. Before, a
// dead remote failed one queued message per reconnect attempt, one every
// 50–550 ms (issue 10 item 7).
func TestDeadRemoteFailsEveryQueuedSendWithinTheBound(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(modeName(async), func(t *testing.T) {
			cfg := testConfig(async, nil)
			cfg.Timeout = 500 * time.Millisecond
			n := startNode(t, cfg)
			const sends = 1000
			bound := 2*cfg.Timeout + time.Second // slack for a loaded machine
			start := time.Now()
			ps := make([]*Pending, sends)
			for i := range ps {
				m, _ := NewMessage("127.0.0.1:1", []byte("to nobody"))
				ps[i] = n.Go(m)
			}
			deadline := time.After(bound)
			for i, p := range ps {
				select {
				case <-p.Done():
				case <-deadline:
					t.Fatalf("after %v only %d of %d sends finished", bound, i, sends)
				}
				if err := p.Err(); !errors.Is(err, ErrCannotConnect) {
					t.Fatalf("send %d: %v, want ErrCannotConnect", i, err)
				}
			}
			t.Logf("%d sends failed within %v", sends, time.Since(start).Round(time.Millisecond))
			if st := n.Stats(); st.CannotConnect != sends || st.SendErrors != sends {
				t.Fatalf("stats count %d cannot-connect of %d errors, want %d", st.CannotConnect, st.SendErrors, sends)
			}
		})
	}
}

// TestFrozenPeerFailsQueuedSendsWithinTheBound: the remote's process is
// stopped (SIGSTOP), so its kernel still accepts connections and bytes but
// nothing is read or acknowledged. Every send, from goroutines sending one
// after the other and from a burst queued at once, ends within about
// 2×Timeout; the node's heap stays bounded; after SIGCONT traffic flows
// again. Before, queued sends failed one per reconnect attempt, and a send
// could wait for 30 s (issue 14 part 5).
func TestFrozenPeerFailsQueuedSendsWithinTheBound(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(modeName(async), func(t *testing.T) {
			cmd, port := startChild(t, modeName(async))
			t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGCONT) }) // before childproc's SIGTERM
			cfg := testConfig(async, nil)
			// 2 s: long enough that the bound, 2×Timeout after the last
			// progress, is told apart from what a reconnect attempt that
			// times out costs (3×Timeout and more).
			cfg.Timeout = 2 * time.Second
			n := startNode(t, cfg)
			dst := fmt.Sprintf("127.0.0.1:%d", port)
			m, _ := NewMessage(dst, []byte("warm up"))
			if err := n.Send(ctxT(t), m); err != nil {
				t.Fatal(err)
			}
			base := heap.InUse()
			childproc.Freeze(t, cmd)
			bound := n.stallLimit() + time.Second // the documented bound, and a loaded machine
			data := make([]byte, 32<<10)          // shared, read-only: the heap shows the node's growth only

			// Four goroutines sending one message after the other.
			type stat struct {
				sends, errs int
				longest     time.Duration
			}
			stats := make(chan stat, 4)
			for g := 0; g < 4; g++ {
				go func() {
					var s stat
					for end := time.Now().Add(2 * cfg.Timeout); time.Now().Before(end); {
						m, _ := NewMessage(dst, data)
						t0 := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						err := n.Send(ctx, m)
						cancel()
						s.longest = max(s.longest, time.Since(t0))
						s.sends++
						if err != nil {
							s.errs++
						}
					}
					stats <- s
				}()
			}
			// A burst queued at once.
			t0 := time.Now()
			ps := make([]*Pending, 200)
			for i := range ps {
				m, _ := NewMessage(dst, data)
				ps[i] = n.Go(m)
			}
			burstErrs, burstDone := 0, 0
			deadline := time.After(bound)
		burst:
			for _, p := range ps {
				select {
				case <-p.Done():
				case <-deadline:
					break burst
				}
				burstDone++
				if p.Err() != nil {
					burstErrs++
				}
			}
			burst := time.Since(t0)
			var all stat
			for g := 0; g < 4; g++ { // they end: every send ends, at the latest with Close
				s := <-stats
				all.sends += s.sends
				all.errs += s.errs
				all.longest = max(all.longest, s.longest)
			}
			if burstDone < len(ps) {
				t.Fatalf("after %v only %d of %d queued sends finished", bound, burstDone, len(ps))
			}
			grown := int64(heap.InUse()) - int64(base)
			t.Logf("burst: %d sends ended within %v (%d errors); senders: %d sends, %d errors, longest %v; heap %+d KiB",
				len(ps), burst.Round(time.Millisecond), burstErrs, all.sends, all.errs, all.longest.Round(time.Millisecond), grown>>10)
			if all.longest > bound {
				t.Errorf("a send took %v, the bound is %v", all.longest, bound)
			}
			if !async && (burstErrs != len(ps) || all.errs != all.sends) {
				t.Errorf("synchronous sends succeeded although the frozen peer released nothing: burst %d of %d failed, senders %d of %d",
					burstErrs, len(ps), all.errs, all.sends)
			}
			if burstErrs == 0 || all.errs == 0 {
				t.Errorf("no send failed although the peer was frozen: burst %d, senders %d", burstErrs, all.errs)
			}
			if grown > 16<<20 {
				t.Errorf("heap grew by %d MiB", grown>>20)
			}

			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			eventually(t, 15*time.Second, "a send to the thawed peer", func() bool {
				m, _ := NewMessage(dst, []byte("back?"))
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return n.Send(ctx, m) == nil
			})
		})
	}
}

// pipelineToEcho is a raw client that writes four asynchronous messages
// to n on one connection at once, then reads the echoes, acknowledging
// each that asks for it, until four came or the node closed the
// connection. It returns how many echoes came.
func pipelineToEcho(t *testing.T, n *Node) int {
	t.Helper()
	p := dialRawPeer(t, n)
	p.expectHandshake(n)
	var burst []byte
	for i := 0; i < 4; i++ {
		var id codec.Identity
		_, _ = rand.Read(id[:])
		burst = append(burst, p.frame(0, id, nil, []byte{byte(i)})...)
	}
	p.write(burst)
	echoes := 0
	hdr := make([]byte, codec.FrameHeaderSize)
	for echoes < 4 {
		_ = p.conn.SetReadDeadline(time.Now().Add(rawIOTimeout))
		if _, err := io.ReadFull(p.conn, hdr); err != nil {
			return echoes // closed by the node
		}
		h, _ := codec.ParseFrameHeader(hdr)
		if _, err := io.ReadFull(p.conn, make([]byte, h.BodyLen())); err != nil {
			return echoes
		}
		echoes++
		if h.Type&codec.ReqAck != 0 {
			p.send(codec.Ack, h.Identity, nil, nil)
		}
	}
	return echoes
}

// TestMixedModeStallIsAsDocumented pins the rule of the package guide
// (issue 14 part 6): a synchronous node whose handler replies (m.Reply,
// Send) stalls when one peer pipelines several messages on one
// connection, because the reply's ACK waits behind a message that needs the
// slot the handler holds; the recommended configurations do not.
func TestMixedModeStallIsAsDocumented(t *testing.T) {
	reply := func(errs chan error) Handler {
		return HandlerFunc(func(m *Message) { errs <- m.Reply(context.Background(), m.Data) })
	}
	t.Run("sync-node-replying-stalls", func(t *testing.T) {
		errs := make(chan error, 4)
		cfg := testConfig(false, reply(errs))
		cfg.Timeout = 300 * time.Millisecond
		n := startNode(t, cfg)
		if got := pipelineToEcho(t, n); got != 1 {
			t.Fatalf("%d echoes: the stall the guide documents did not happen; update the guide", got)
		}
		if err := <-errs; !errors.Is(err, ErrTimeout) {
			t.Fatalf("the stalled reply: %v, want ErrTimeout", err)
		}
	})
	t.Run("async-node-replying", func(t *testing.T) {
		n := startNode(t, testConfig(true, reply(make(chan error, 4))))
		if got := pipelineToEcho(t, n); got != 4 {
			t.Fatalf("%d echoes of 4", got)
		}
	})
	t.Run("sync-node-releasing-before-it-replies", func(t *testing.T) {
		n := startNode(t, testConfig(false, HandlerFunc(func(m *Message) {
			answer := &Message{Identity: m.Identity, Addr: m.Addr, Data: append([]byte(nil), m.Data...)}
			_ = m.Release()
			_ = m.Node().Send(context.Background(), answer)
		})))
		if got := pipelineToEcho(t, n); got != 4 {
			t.Fatalf("%d echoes of 4", got)
		}
	})
}

// outputPaused reports whether the node stopped reading a connection for
// output it owes (asked on the loop).
func outputPaused(n *Node) bool {
	ch := make(chan bool, 1)
	if n.r.Submit(func() {
		paused := false
		for c := range n.conns {
			paused = paused || c.outPaused
		}
		ch <- paused
	}) != nil {
		return false
	}
	return <-ch
}

// TestAckFloodReaderThatCatchesUpGetsEveryAck: the read pause for owed
// output is a pause, not a loss. A peer writes many REQ_ACK frames without
// reading until the node stops reading it, then reads: every frame is
// delivered once and every ACK comes back, in order, plaintext and TLS
// (where decrypted bytes wait while paused).
func TestAckFloodReaderThatCatchesUpGetsEveryAck(t *testing.T) {
	chain := chainFiles(t, "ca", 1)[0]
	creds, err := tlsconn.Load(chain)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		async bool
		tls   bool
	}{{"sync-plaintext", false, false}, {"async-tls", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.async, nil)
			ip := "127.0.0.1"
			if tc.tls {
				cfg = tlsConfig(tc.async, nil, chain)
				ip = "127.0.0.2"
			}
			cfg.Timeout = 20 * time.Second // no close: this peer reads in the end
			n := startNode(t, cfg)
			var c net.Conn
			d := net.Dialer{Timeout: rawIOTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			c, err := d.Dial("tcp", at(ip, n))
			if err != nil {
				t.Fatal(err)
			}
			tcp := c.(*net.TCPConn)
			_ = tcp.SetReadBuffer(4096) // the node's output backs up sooner
			if tc.tls {
				c = tls.Client(c, creds.ClientConfig())
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			var id codec.Identity
			if _, err := c.Write(codec.Handshake{Port: 1, Identity: id}.Append(nil)); err != nil {
				t.Fatal(err)
			}
			hs := make([]byte, codec.HandshakeSize)
			if _, err := io.ReadFull(c, hs); err != nil {
				t.Fatal(err)
			}

			const frames = 200000 // 5.4 MB of ACKs owed: more than socket buffers hold
			wrote := make(chan error, 1)
			go func() {
				var batch []byte
				for i := 0; i < frames; {
					batch = batch[:0]
					for k := 0; k < 512 && i < frames; k, i = k+1, i+1 {
						var id codec.Identity
						binary.BigEndian.PutUint64(id[:], uint64(i))
						h := codec.FrameHeader{Identity: id, Serial: uint32(i), Type: codec.ReqAck}
						batch = h.Append(batch)
					}
					if _, err := c.Write(batch); err != nil {
						wrote <- err
						return
					}
				}
				wrote <- nil
			}()
			eventually(t, 20*time.Second, "the node to stop reading the peer", func() bool { return outputPaused(n) })
			time.Sleep(200 * time.Millisecond) // the writer is blocked by now
			_ = tcp.SetReadBuffer(4 << 20)     // and now read at loopback speed

			ack := make([]byte, codec.FrameHeaderSize)
			for i := 0; i < frames; i++ {
				// Generous: after a long zero window the node's kernel
				// probes with exponential back-off (seconds apart), and
				// a read that waits for the next probe is not a stall of
				// the node's. A real stall ends at the write deadline
				// (Timeout, 20 s) with the connection closed.
				_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
				if _, err := io.ReadFull(c, ack); err != nil {
					t.Fatalf("ACK %d of %d: %v; stats %+v", i, frames, err, n.Stats())
				}
				h, _ := codec.ParseFrameHeader(ack)
				if got := binary.BigEndian.Uint64(h.Identity[:]); h.Type != codec.Ack || got != uint64(i) {
					t.Fatalf("frame %d: type %v for message %d, want the ACK of %d", i, h.Type, got, i)
				}
			}
			if err := <-wrote; err != nil {
				t.Fatalf("peer write: %v", err)
			}
			st := n.Stats()
			if st.MessagesIn != frames || st.AcksOut != frames || st.PausedConnections != 0 {
				t.Fatalf("stats %+v, want %d in and out, no pause left", st, frames)
			}
		})
	}
}
