package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func testConfig(async bool, h Handler) Config {
	return Config{
		Port:              AnyPort,
		BindV4:            netip.MustParseAddr("127.0.0.1"),
		BindV6:            netip.IPv6Loopback(),
		DisableEncryption: true,
		Asynchronous:      async,
		Timeout:           time.Second,
		Handler:           h,
	}
}

func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

func addr(n *Node) string { return fmt.Sprintf("127.0.0.1:%d", n.Port()) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo sends every message back to where it came from.
func echo(n **Node) Handler {
	return HandlerFunc(func(m *Message) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = (*n).Send(ctx, m)
	})
}

func TestTwoNodesExchangeInAllModes(t *testing.T) {
	for _, mode := range []struct {
		name           string
		senderA, echoA bool
	}{{"sync", false, false}, {"async", true, true}, {"sync-to-async", false, true}, {"async-to-sync", true, false}} {
		t.Run(mode.name, func(t *testing.T) {
			var en *Node
			en = startNode(t, testConfig(mode.echoA, echo(&en)))
			got := make(chan *Message, 10)
			sender := startNode(t, testConfig(mode.senderA, HandlerFunc(func(m *Message) {
				got <- &Message{Identity: m.Identity, Header: append([]byte(nil), m.Header...),
					Data: append([]byte(nil), m.Data...), Addr: m.Addr, RemoteIdentity: m.RemoteIdentity}
			})))
			for i, dst := range []string{addr(en), fmt.Sprintf("[::1]:%d", en.Port())} {
				m, err := NewMessage(dst, []byte(fmt.Sprintf("hello %d", i)))
				if err != nil {
					t.Fatal(err)
				}
				m.Header = []byte("hdr")
				if err := sender.Send(ctxT(t), m); err != nil {
					t.Fatalf("send: %v", err)
				}
				select {
				case r := <-got:
					if r.Identity != m.Identity || string(r.Data) != string(m.Data) || string(r.Header) != "hdr" {
						t.Fatalf("echo %v %q %q, sent %v %q", r.Identity, r.Header, r.Data, m.Identity, m.Data)
					}
					if r.RemoteIdentity != en.Identity() {
						t.Fatalf("remote identity %v, want %v", r.RemoteIdentity, en.Identity())
					}
					if r.Addr.Port() != uint16(en.Port()) {
						t.Fatalf("origin %v does not carry the echo node's port %d", r.Addr, en.Port())
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no echo")
				}
			}
			st := sender.Stats()
			if st.MessagesOut != 2 || st.MessagesIn != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestThreeNodesRouteInACircle(t *testing.T) {
	// A→B→C→A by sending received messages on.
	var a, b, c *Node
	forward := func(next **Node) Handler {
		return HandlerFunc(func(m *Message) {
			out := &Message{Identity: m.Identity, Data: append(m.Data, '.'), Addr: netip.MustParseAddrPort(addr(*next))}
			if err := (*next).Send(context.Background(), out); err != nil {
				t.Errorf("forward: %v", err)
			}
		})
	}
	_ = forward
	done := make(chan string, 1)
	c = startNode(t, testConfig(false, nil))
	b = startNode(t, testConfig(false, nil))
	a = startNode(t, testConfig(false, HandlerFunc(func(m *Message) { done <- string(m.Data) })))
	// b forwards to c, c forwards to a: each node uses its own Send.
	bh := HandlerFunc(func(m *Message) {
		m2 := &Message{Identity: m.Identity, Data: append(append([]byte(nil), m.Data...), 'b'), Addr: netip.MustParseAddrPort(addr(c))}
		if err := b.Send(context.Background(), m2); err != nil {
			t.Errorf("b: %v", err)
		}
	})
	ch := HandlerFunc(func(m *Message) {
		m2 := &Message{Identity: m.Identity, Data: append(append([]byte(nil), m.Data...), 'c'), Addr: netip.MustParseAddrPort(addr(a))}
		if err := c.Send(context.Background(), m2); err != nil {
			t.Errorf("c: %v", err)
		}
	})
	b.s.Handler, c.s.Handler = bh, ch
	b.work.stop()
	c.work.stop()
	b.work, c.work = newWorkQueue(b, 2), newWorkQueue(c, 2)
	m, _ := NewMessage(addr(b), []byte("a"))
	if err := a.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		if s != "abc" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message did not come around")
	}
}

func TestSendToNothingFailsCannotConnect(t *testing.T) {
	n := startNode(t, testConfig(false, nil))
	m, _ := NewMessage("127.0.0.1:1", []byte("x"))
	err := n.Send(ctxT(t), m)
	if !errors.Is(err, ErrCannotConnect) {
		t.Fatalf("want ErrCannotConnect, got %v", err)
	}
}

func TestManySendersConcurrently(t *testing.T) {
	var recv sync.Map
	count := make(chan struct{}, 1000)
	rx := startNode(t, testConfig(true, HandlerFunc(func(m *Message) {
		if _, dup := recv.LoadOrStore(m.Identity, true); dup {
			t.Errorf("duplicate %v", m.Identity)
		}
		count <- struct{}{}
	})))
	for _, async := range []bool{false, true} {
		tx := startNode(t, testConfig(async, nil))
		var wg sync.WaitGroup
		for g := 0; g < 10; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					m, _ := NewMessage(addr(rx), []byte("payload"))
					if err := tx.Send(ctxT(t), m); err != nil {
						t.Errorf("send: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	for i := 0; i < 1000; i++ {
		select {
		case <-count:
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of 1000", i)
		}
	}
}

// The node's clock reads only the monotonic clock, yet its times stand
// between time.Now readings taken around it, and they carry a monotonic
// reading, which is what Sub and comparisons use.
func TestNowFollowsTheMonotonicClock(t *testing.T) {
	var n Node
	for range 100 {
		before := time.Now()
		now, mono := n.now(), time.Duration(n.mono())
		after := time.Now()
		if now.Before(before) || now.After(after) {
			t.Fatalf("now() = %v, not between %v and %v", now, before, after)
		}
		if now.Round(0) == now {
			t.Fatalf("now() = %v has no monotonic reading", now)
		}
		if mono < before.Sub(epoch) || mono > after.Sub(epoch) {
			t.Fatalf("mono() = %v, not between %v and %v", mono, before.Sub(epoch), after.Sub(epoch))
		}
	}
}
