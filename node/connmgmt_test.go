package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
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

// TestUnreachableRemoteFailsFastAndIsProbedUntilBack: once a connect
// failed, sends to that remote fail at once for a while, however many come
// one after the other, instead of one per reconnect attempt; the node
// keeps trying at the debounce rate, not faster, and traffic flows again
// as soon as the remote answers.
func TestUnreachableRemoteFailsFastAndIsProbedUntilBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	var accepts atomic.Int64
	var serve atomic.Bool
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			if !serve.Load() {
				c.Close() // a remote that hangs up before its handshake
				continue
			}
			var id codec.Identity
			_, _ = c.Write(codec.Handshake{Port: port, Identity: id}.Append(nil))
			go func() { _, _ = io.Copy(io.Discard, c) }() // ends when the node closes
		}
	}()
	n := startNode(t, testConfig(true, nil))
	dst := ln.Addr().String()
	const sends = 200
	start := time.Now()
	for i := 0; i < sends; i++ {
		m, _ := NewMessage(dst, []byte("anyone?"))
		if err := n.Send(ctxT(t), m); err == nil {
			t.Fatalf("send %d succeeded to a remote that hangs up", i)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("%d sends one after the other took %v: one per connect attempt", i+1, el)
		}
	}
	el := time.Since(start)
	attempts := accepts.Load()
	t.Logf("%d sends failed in %v, %d connect attempts", sends, el.Round(time.Millisecond), attempts)
	if most := int64(el/debounceMin) + 2; attempts > most {
		t.Fatalf("%d connect attempts in %v, at most %d at the debounce rate", attempts, el, most)
	}

	serve.Store(true)
	eventually(t, 5*time.Second, "a send to the remote that came back", func() bool {
		m, _ := NewMessage(dst, []byte("back?"))
		return n.Send(ctxT(t), m) == nil
	})
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
