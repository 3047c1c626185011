package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// passRig is a sender node and an echo node over loopback in one process:
// a pass is a message to the echo node and its echo back. Both nodes use
// automatic release, the echo node sends the received message back as is
// (zero copy, released when that send finished) and the sender's handler
// only counts: the way to a pass without allocations.
type passRig struct {
	tx   *Node
	msgs []*Message
	// events carries nil for each echo, and errors; one channel, so the
	// waiting side blocks on one case (a select of several takes a sudog
	// per case from the runtime, which allocates now and then).
	events chan error
	sent   chan *Message
	done   func(*Message, error)
}

func newPassRig(t testing.TB, async bool, mode ReceiveMode, inflight int) *passRig {
	t.Helper()
	return newPassRigWith(t, mode, inflight, testConfig(async, nil), addr)
}

// newPassRigWith is newPassRig with base as both nodes' configuration
// (Handler and Receive are set here) and at naming the echo node's address.
func newPassRigWith(t testing.TB, mode ReceiveMode, inflight int, base Config, at func(*Node) string) *passRig {
	t.Helper()
	en := new(*Node)
	ecfg := base
	ecfg.Handler, ecfg.Receive = autoEcho(mode, en), mode
	*en = startNode(t, ecfg)
	r := &passRig{events: make(chan error, 1024), sent: make(chan *Message, inflight)}
	tcfg := base
	tcfg.Handler, tcfg.Receive = HandlerFunc(func(*Message) { r.events <- nil }), mode
	r.tx = startNode(t, tcfg)
	r.msgs = make([]*Message, inflight)
	for i := range r.msgs {
		r.msgs[i], _ = NewMessage(at(*en), []byte("hello"))
	}
	r.done = func(m *Message, err error) {
		if err != nil {
			select {
			case r.events <- err:
			default:
			}
		}
		r.sent <- m
	}
	return r
}

// autoEcho sends every message back from the handler and leaves the
// release to the node, which frees the slot when the echo finished.
func autoEcho(mode ReceiveMode, n **Node) Handler {
	if mode == ReceiveInline {
		return HandlerFunc(func(m *Message) { _ = (*n).SendOnLoop(m, nil) })
	}
	return HandlerFunc(func(m *Message) { _ = (*n).SendAsync(m, nil) })
}

// run does k passes with up to len(r.msgs) in flight and waits for all.
func (r *passRig) run(k int) error {
	issued := 0
	for _, m := range r.msgs {
		if issued == k {
			break
		}
		if err := r.tx.SendAsync(m, r.done); err != nil {
			return err
		}
		issued++
	}
	var got atomic.Int64
	stall := time.AfterFunc(10*time.Second, func() {
		r.events <- fmt.Errorf("stalled: no echo for 10s after %d of %d passes", got.Load(), k)
	})
	defer stall.Stop()
	for ; got.Load() < int64(k); got.Add(1) {
		if err := <-r.events; err != nil {
			return err
		}
		if got.Load()&255 == 0 {
			stall.Reset(10 * time.Second)
		}
		m := <-r.sent
		if issued < k {
			issued++
			if err := r.tx.SendAsync(m, r.done); err != nil {
				return err
			}
		}
	}
	return nil
}

// timePasses connects r and warms it up, then times b.N passes, reporting
// allocations and, if bytesPerPass > 0, throughput.
func timePasses(b *testing.B, r *passRig, bytesPerPass int64) {
	if err := r.run(100); err != nil {
		b.Fatal(err)
	}
	if bytesPerPass > 0 {
		b.SetBytes(bytesPerPass)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := r.run(b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

// BenchmarkPass measures one pass: a message to an echo node and its echo
// back, over loopback, in one process, with inline handlers (the echo node
// is the zero-copy inline echo). inflight sends are kept in flight.
// allocs/op is what both nodes allocate per pass: 0 in steady state.
func BenchmarkPass(b *testing.B) {
	for _, async := range []bool{false, true} {
		for _, inflight := range []int{1, 16} {
			mode := "sync"
			if async {
				mode = "async"
			}
			b.Run(fmt.Sprintf("%s/inflight=%d", mode, inflight), func(b *testing.B) {
				timePasses(b, newPassRig(b, async, ReceiveInline, inflight), 0)
			})
		}
	}
}

// BenchmarkWorkerPass is BenchmarkPass/async with handler workers on both
// nodes (the default receive style): every message goes from the loop to a
// worker goroutine and its reply back through the loop.
func BenchmarkWorkerPass(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run(fmt.Sprintf("async/inflight=%d", inflight), func(b *testing.B) {
			timePasses(b, newPassRig(b, true, ReceiveWorkers, inflight), 0)
		})
	}
}

// BenchmarkRequests measures Request with 16 goroutines requesting at
// once, each waiting for its answer before it asks again, against an
// inline echo node in the same process: one op is one request and its
// answer. Request copies the answer, so it allocates.
func BenchmarkRequests(b *testing.B) {
	en := new(*Node)
	ecfg := testConfig(true, nil)
	ecfg.Handler, ecfg.Receive = autoEcho(ReceiveInline, en), ReceiveInline
	*en = startNode(b, ecfg)
	tx := startNode(b, testConfig(true, nil))
	to := addr(*en)
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := NewMessage(to, []byte("hello"))
			for left.Add(-1) >= 0 {
				if _, err := tx.Request(context.Background(), m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkEchoSizes measures asynchronous passes with 16 in flight, in
// plaintext and over TLS (both nodes encrypting), for the bench's three
// sizes: the in-process counterpart of chirp bench's async pooled16 rows
// and their TLS twins, steadier than two processes for comparing builds
// (go test -bench EchoSizes -count 6 | benchstat; not named Pass*, so that
// -bench Pass stays the allocation-free plaintext set). allocs/op over TLS is
// crypto/tls's (see TestTLSPassAllocatesOnlyInCryptoTLS).
func BenchmarkEchoSizes(b *testing.B) {
	chain := chainFiles(b, "bench CA", 1)[0]
	for _, useTLS := range []bool{false, true} {
		for _, size := range []int{5, 1024, 65536} {
			name := fmt.Sprintf("plain/%dB", size)
			cfg, to := testConfig(true, nil), addr
			if useTLS {
				name = fmt.Sprintf("tls/%dB", size)
				cfg, to = tlsConfig(true, nil, chain), func(n *Node) string { return at("127.0.0.2", n) }
			}
			b.Run(name, func(b *testing.B) {
				r := newPassRigWith(b, ReceiveInline, 16, cfg, to)
				for _, m := range r.msgs {
					m.Data = make([]byte, size)
				}
				timePasses(b, r, int64(2*size))
			})
		}
	}
}
