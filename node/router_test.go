package node

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// apOf is n's address as a netip.AddrPort.
func apOf(n *Node) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(n.Port()))
}

// upperWorker replies with the data in upper case.
func upperWorker(t *testing.T, async bool) *Node {
	return startNode(t, testConfig(async, HandlerFunc(func(m *Message) {
		_ = m.Reply(ctxT(t), bytes.ToUpper(m.Data))
	})))
}

func TestNewRouterChecksItsWorkers(t *testing.T) {
	if _, err := NewRouter(); !errors.Is(err, ErrValue) {
		t.Errorf("no workers: %v", err)
	}
	if _, err := NewRouter(netip.AddrPort{}); !errors.Is(err, ErrValue) {
		t.Errorf("invalid worker: %v", err)
	}
	r, err := NewRouter(netip.MustParseAddrPort("[::ffff:127.0.0.1]:3000"))
	if err != nil || r.Workers()[0] != netip.MustParseAddrPort("127.0.0.1:3000") {
		t.Errorf("NewRouter: %v, %v", r.Workers(), err)
	}
}

// TestRouterInEveryReceiveMode: Request works end to end through a
// router run inline, on workers, and with ManualRelease, over synchronous
// and asynchronous workers; no slot stays taken.
func TestRouterInEveryReceiveMode(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   ReceiveMode
		manual bool
	}{{"inline", ReceiveInline, false}, {"workers", ReceiveWorkers, false}, {"inline manual", ReceiveInline, true},
		{"workers manual", ReceiveWorkers, true}} {
		t.Run(c.name, func(t *testing.T) {
			rt, err := NewRouter(apOf(upperWorker(t, false)), apOf(upperWorker(t, true)))
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(false, rt)
			cfg.Receive, cfg.ManualRelease = c.mode, c.manual
			router := startNode(t, cfg)
			p := startNode(t, testConfig(false, nil))
			for i := 0; i < 10; i++ {
				m, _ := NewMessage(addr(router), []byte("job"))
				a, err := p.Request(ctxT(t), m)
				if err != nil || string(a.Data) != "JOB" || a.Identity != m.Identity {
					t.Fatalf("request %d: %v, %v", i, a, err)
				}
			}
			st := rt.Stats()
			if st.Forwarded != 10 || st.Replies != 10 || st.Failed != 0 || st.Routes != 0 {
				t.Errorf("router: %+v", st)
			}
			waitSlotsFree(t, router)
		})
	}
}

func waitSlotsFree(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.Stats().SlotsInUse != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots still in use", n.Stats().SlotsInUse)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRouterNeverAcknowledgesAFailedForward: the worker is gone, so the
// synchronous producer's send fails (its own timeout) though the router
// took the message; the router's slot is freed all the same. With
// ManualRelease too.
func TestRouterNeverAcknowledgesAFailedForward(t *testing.T) {
	for _, manual := range []bool{false, true} {
		gone := startNode(t, testConfig(false, nil))
		dead := apOf(gone)
		_ = gone.Close(context.Background())
		rt, _ := NewRouter(dead)
		cfg := testConfig(false, rt)
		cfg.Receive, cfg.ManualRelease = ReceiveInline, manual
		router := startNode(t, cfg)
		pcfg := testConfig(false, nil)
		pcfg.Timeout = 300 * time.Millisecond
		p := startNode(t, pcfg)
		m, _ := NewMessage(addr(router), []byte("lost"))
		start := time.Now()
		err := p.Send(ctxT(t), m)
		t.Logf("manual %v: %v after %v; %+v", manual, err, time.Since(start), rt.Stats())
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("manual %v: send through a router to a dead worker: %v", manual, err)
		}
		if st := rt.Stats(); st.Failed != 1 || st.Forwarded != 0 || st.Routes != 0 {
			t.Errorf("manual %v: router: %+v", manual, st)
		}
		waitSlotsFree(t, router)
	}
}

// TestRouterPassesOverAFailingWorker: of a dead and a live worker, the
// dead one fails its forwards at once and so looks the least loaded; the
// router passes it over after its first failure.
func TestRouterPassesOverAFailingWorker(t *testing.T) {
	gone := startNode(t, testConfig(false, nil))
	dead := apOf(gone)
	_ = gone.Close(context.Background())
	live := upperWorker(t, false)
	rt, _ := NewRouter(dead, apOf(live))
	cfg := testConfig(false, rt)
	cfg.Receive = ReceiveInline
	cfg.Timeout = 5 * time.Second // the time a failed worker is passed over
	router := startNode(t, cfg)
	pcfg := testConfig(false, nil)
	pcfg.Timeout = 200 * time.Millisecond
	p := startNode(t, pcfg)
	failed := 0
	for i := 0; i < 20; i++ {
		m, _ := NewMessage(addr(router), []byte("job"))
		if err := p.Send(ctxT(t), m); err != nil {
			failed++
		}
	}
	if st := rt.Stats(); failed > 1 || st.Failed > 1 || st.Forwarded < 19 {
		t.Errorf("%d of 20 sends failed; router %+v", failed, st)
	}
}

// TestRouterRoutesALateReply: a worker that releases the message first
// and answers afterwards (Recv with automatic release, then a new message
// with the same identity) is answered within the router's Timeout; a
// message from a worker that answers no forward is dropped without ACK.
func TestRouterRoutesALateReply(t *testing.T) {
	wcfg := testConfig(false, nil)
	wcfg.Receive = ReceiveQueue
	worker := startNode(t, wcfg)
	rt, _ := NewRouter(apOf(worker))
	cfg := testConfig(false, rt)
	cfg.Receive = ReceiveInline
	router := startNode(t, cfg)
	p := startNode(t, testConfig(false, nil))
	go func() {
		m, err := worker.Recv(ctxT(t)) // a copy, released
		if err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
		a, _ := NewMessage(addr(router), append([]byte("late "), m.Data...))
		a.Identity = m.Identity
		_ = worker.Send(ctxT(t), a)
	}()
	m, _ := NewMessage(addr(router), []byte("answer"))
	a, err := p.Request(ctxT(t), m)
	if err != nil || string(a.Data) != "late answer" {
		t.Fatalf("request: %v, %v", a, err)
	}
	stray, _ := NewMessage(addr(router), []byte("nobody asked"))
	if err := worker.Send(ctxT(t), stray); !errors.Is(err, ErrTimeout) {
		t.Errorf("unroutable message from a worker: %v", err)
	}
	if st := rt.Stats(); st.Unroutable != 1 || st.Replies != 1 || st.Forwarded != 1 {
		t.Errorf("router: %+v", st)
	}
}

// TestRouterForgetsRoutes: a route whose forward finished is kept for the
// router's Timeout for its reply, then forgotten.
func TestRouterForgetsRoutes(t *testing.T) {
	worker := startNode(t, testConfig(false, HandlerFunc(func(*Message) {}))) // never replies
	rt, _ := NewRouter(apOf(worker))
	cfg := testConfig(false, rt)
	cfg.Receive, cfg.Timeout = ReceiveInline, 200*time.Millisecond
	router := startNode(t, cfg)
	p := startNode(t, testConfig(false, nil))
	send := func() {
		m, _ := NewMessage(addr(router), []byte("one way"))
		if err := p.Send(ctxT(t), m); err != nil {
			t.Fatal(err)
		}
	}
	send()
	send()
	if st := rt.Stats(); st.Routes != 2 {
		t.Errorf("routes kept for replies: %+v", st)
	}
	time.Sleep(300 * time.Millisecond)
	send()
	if st := rt.Stats(); st.Routes != 1 {
		t.Errorf("routes after the reply window: %+v", st)
	}
}

// TestRouterExpiryQueueHoldsNoPointers: the queue of route expiries holds
// rate × Timeout entries (700,000 at 140k forwards/s and 5 s). With a
// pointer in an entry (a time.Time has one) the garbage collector scans it
// all in every cycle: 5.6 % of a relay's CPU at that rate (perf record).
func TestRouterExpiryQueueHoldsNoPointers(t *testing.T) {
	if p := pointerIn(reflect.TypeFor[expiry]()); p != "" {
		t.Fatalf("expiry holds a pointer: %s", p)
	}
}

// pointerIn names a field of t that is or holds a pointer, "" if none does.
func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	case reflect.Array:
		if t.Len() == 0 {
			return ""
		}
		return pointerIn(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if p := pointerIn(t.Field(i).Type); p != "" {
				return t.Field(i).Name + "." + p
			}
		}
		return ""
	}
	return t.String()
}
