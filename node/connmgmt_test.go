package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/codec"
)

// acceptRaw is a raw peer the node dials: it listens, accepts one
// connection and, if announce is not 0, sends a handshake announcing it.
func acceptRaw(t *testing.T, announce func(listenPort uint16) uint16) (dst string, peer chan *rawPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	peer = make(chan *rawPeer, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p := &rawPeer{t: t, conn: c, ln: ln, serial: 1000}
		_, _ = rand.Read(p.id[:])
		t.Cleanup(func() { c.Close() })
		if announce != nil {
			p.port = announce(port)
			p.sendHandshake()
		}
		peer <- p
	}()
	return fmt.Sprintf("127.0.0.1:%d", port), peer
}

func TestNoopProbeGoesAheadOfMessageAfterLongIdle(t *testing.T) {
	cfg := testConfig(true, nil)
	cfg.Timeout = 100 * time.Millisecond
	cfg.ReuseTime = 2 * time.Second // probe after 1.5 s idle, GC after 2 s
	n := startNode(t, cfg)
	dst, peers := acceptRaw(t, func(p uint16) uint16 { return p })
	m, _ := NewMessage(dst, []byte("first"))
	if err := n.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	p := <-peers
	p.expectHandshake(n)
	first := p.readFrame()
	if string(first.Data) != "first" {
		t.Fatalf("first frame %q", first.Data)
	}
	time.Sleep(1600 * time.Millisecond)
	// A burst of sends after the idle time, queued in one go as a drained
	// inbox queues them: one probe, not one per send.
	errs := make(chan error, 3)
	if err := n.r.Submit(func() {
		if n.cork() {
			defer n.uncork()
		}
		for _, s := range []string{"second", "third", "fourth"} {
			m, _ := NewMessage(dst, []byte(s))
			if err := n.SendOnLoop(m, func(_ *Message, err error) { errs <- err }); err != nil {
				errs <- err
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	noop := p.readFrame()
	if noop.Type != codec.Noop || !noop.Identity.IsZero() || noop.HeaderLen != 0 || noop.DataLen != 0 {
		t.Fatalf("expected NOOP probe, got type %v identity %v", noop.Type, noop.Identity)
	}
	serial := noop.Serial
	if serial != first.Serial+1 {
		t.Fatalf("serials %d, %d are not consecutive", first.Serial, serial)
	}
	for _, want := range []string{"second", "third", "fourth"} {
		f := p.readFrame()
		if f.Type == codec.Noop {
			t.Fatalf("a second NOOP probe before %q", want)
		}
		if string(f.Data) != want || f.Serial != serial+1 {
			t.Fatalf("after the probe: %q serial %d, want %q serial %d", f.Data, f.Serial, want, serial+1)
		}
		serial = f.Serial
	}
}

func TestDialedPeerAnnouncingAnotherPortStillGetsTheQueue(t *testing.T) {
	n := startNode(t, testConfig(true, nil))
	dst, peers := acceptRaw(t, func(p uint16) uint16 { return p + 1 })
	m, _ := NewMessage(dst, []byte("via nat"))
	if err := n.Send(ctxT(t), m); err != nil {
		t.Fatalf("send: %v", err)
	}
	p := <-peers
	p.expectHandshake(n)
	if f := p.readFrame(); string(f.Data) != "via nat" {
		t.Fatalf("got %q", f.Data)
	}
}

func TestAcceptedButSilentPeerTimesOutTheSend(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.Timeout = 200 * time.Millisecond // connect timeout 400 ms
	n := startNode(t, cfg)
	dst, _ := acceptRaw(t, nil)
	m, _ := NewMessage(dst, []byte("hello?"))
	start := time.Now()
	err := n.Send(ctxT(t), m)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if d := time.Since(start); d < 350*time.Millisecond || d > 3*time.Second {
		t.Fatalf("timed out after %v, want about 400ms", d)
	}
}

// TestRefusedConnectFailsTheQueueThenRetriesAfterDebounce: a failed
// connect fails every queued message at once (not libchirp's one per
// attempt), and the next send dials again only after the reconnect
// debounce, so a dead peer is not hammered.
func TestRefusedConnectFailsTheQueueThenRetriesAfterDebounce(t *testing.T) {
	n := startNode(t, testConfig(true, nil))
	var ps []*Pending
	for i := 0; i < 4; i++ {
		m, _ := NewMessage("127.0.0.1:1", []byte{byte(i)})
		ps = append(ps, n.Go(m))
	}
	for i, p := range ps {
		if err := p.Wait(ctxT(t)); !errors.Is(err, ErrCannotConnect) {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	failed := time.Now()
	m, _ := NewMessage("127.0.0.1:1", []byte("again"))
	if err := n.Send(ctxT(t), m); !errors.Is(err, ErrCannotConnect) {
		t.Fatalf("send after the failure: %v", err)
	}
	if d := time.Since(failed); d < debounceMin*3/5 {
		t.Fatalf("the next attempt came %v after the failed one: no debounce", d)
	}
	if st := n.Stats(); st.CannotConnect != 5 || st.SendErrors != 5 {
		t.Fatalf("stats count %d cannot-connect of %d errors, want 5 of 5", st.CannotConnect, st.SendErrors)
	}
}

func TestSimultaneousSendsBothWaysAllSucceed(t *testing.T) {
	for _, async := range []bool{false, true} {
		a := startNode(t, testConfig(async, nil))
		b := startNode(t, testConfig(async, nil))
		var wg sync.WaitGroup
		for round := 0; round < 20; round++ {
			for _, pair := range [][2]*Node{{a, b}, {b, a}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m, _ := NewMessage(addr(pair[1]), []byte("hi"))
					if err := pair[0].Send(ctxT(t), m); err != nil {
						t.Errorf("send: %v", err)
					}
				}()
			}
		}
		wg.Wait()
		if c := a.Stats().Connections; c < 1 || c > 2 {
			t.Fatalf("%d connections between two nodes", c)
		}
	}
}
