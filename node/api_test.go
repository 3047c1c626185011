package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRecvQueueHandsOutCopiesAndReleases(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.Receive = ReceiveQueue
	rx := startNode(t, cfg)
	tx := startNode(t, testConfig(false, nil))
	for i := 0; i < 3; i++ {
		m, _ := NewMessage(addr(rx), []byte(fmt.Sprintf("item %d", i)))
		p := tx.Go(m)
		got, err := rx.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != fmt.Sprintf("item %d", i) || got.HasSlot() {
			t.Fatalf("got %q, slot %v", got.Data, got.HasSlot())
		}
		// The copy was released at Recv: the synchronous send completes.
		if err := p.Wait(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := rx.Stats().SlotsInUse; n != 0 {
		t.Fatalf("%d slots in use", n)
	}
}

func TestRecvQueueManualReleaseHoldsTheSlot(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.Receive = ReceiveQueue
	cfg.ManualRelease = true
	rx := startNode(t, cfg)
	tx := startNode(t, testConfig(false, nil))
	m, _ := NewMessage(addr(rx), []byte("hold me"))
	p := tx.Go(m)
	got, err := rx.Recv(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !got.HasSlot() || !got.RequestedAck() || rx.Stats().SlotsInUse != 1 {
		t.Fatalf("slot %v ack %v in use %d", got.HasSlot(), got.RequestedAck(), rx.Stats().SlotsInUse)
	}
	select {
	case <-p.Done():
		t.Fatal("synchronous send completed before the release")
	case <-time.After(100 * time.Millisecond):
	}
	if err := got.Release(); err != nil {
		t.Fatal(err)
	}
	if err := got.Release(); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("second release: %v", err)
	}
	if err := p.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := rx.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty queue: %v", err)
	}
}

func TestRecvAfterCloseFailsWithShutdown(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.Receive = ReceiveQueue
	rx, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := rx.Recv(context.Background()); errc <- err }()
	_ = rx.Close(context.Background())
	if err := <-errc; !errors.Is(err, ErrShutdown) {
		t.Fatalf("Recv: %v", err)
	}
}

func TestInlineHandlerRepliesWithSendAsync(t *testing.T) {
	var en *Node
	cfg := testConfig(true, HandlerFunc(func(m *Message) {
		reply := m.detached() // the reply must outlive the released slot
		_ = en.SendAsync(reply, func(*Message, error) {})
	}))
	cfg.Receive = ReceiveInline
	en = startNode(t, cfg)
	tx := startNode(t, testConfig(true, nil))
	m, _ := NewMessage(addr(en), []byte("fast"))
	a, err := tx.Request(ctxT(t), m)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Data) != "fast" || a.Identity != m.Identity {
		t.Fatalf("answer %q %v", a.Data, a.Identity)
	}
}

func TestRequestReplyFromManyGoroutines(t *testing.T) {
	for _, async := range []bool{false, true} {
		var en *Node
		en = startNode(t, testConfig(async, echo(&en)))
		cli := startNode(t, testConfig(async, nil))
		var wg sync.WaitGroup
		for g := 0; g < 32; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					want := fmt.Sprintf("g%d-%d", g, i)
					m, _ := NewMessage(addr(en), []byte(want))
					a, err := cli.Request(ctxT(t), m)
					if err != nil {
						t.Errorf("request: %v", err)
						return
					}
					if string(a.Data) != want || a.Identity != m.Identity {
						t.Errorf("answer %q for %q", a.Data, want)
					}
					if m.inFlight.Load() {
						t.Errorf("request message still in flight after Request returned")
					}
				}
			}()
		}
		wg.Wait()
		// Releases travel to the loop asynchronously.
		deadline := time.Now().Add(5 * time.Second)
		for cli.Stats().SlotsInUse != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := cli.Stats().SlotsInUse; n != 0 {
			t.Fatalf("%d answer slots not released", n)
		}
	}
}

func TestLateAnswerIsDeliveredAsOrdinaryMessage(t *testing.T) {
	slow := HandlerFunc(func(m *Message) {
		time.Sleep(300 * time.Millisecond)
		r := m.detached()
		_ = m.node.Send(context.Background(), r)
	})
	en := startNode(t, testConfig(true, slow))
	ordinary := make(chan *Message, 1)
	cli := startNode(t, testConfig(true, HandlerFunc(func(m *Message) { ordinary <- m.detached() })))
	m, _ := NewMessage(addr(en), []byte("late"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := cli.Request(ctx, m); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	select {
	case a := <-ordinary:
		if a.Identity != m.Identity || string(a.Data) != "late" {
			t.Fatalf("late answer %q", a.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("late answer was not delivered")
	}
}

func TestSixtyFourSendsInFlightFromOneGoroutine(t *testing.T) {
	for _, async := range []bool{false, true} {
		got := make(chan struct{}, 64)
		rx := startNode(t, testConfig(async, HandlerFunc(func(*Message) { got <- struct{}{} })))
		tx := startNode(t, testConfig(async, nil))
		var ps []*Pending
		for i := 0; i < 64; i++ {
			m, _ := NewMessage(addr(rx), []byte{byte(i)})
			ps = append(ps, tx.Go(m))
		}
		for i, p := range ps {
			if err := p.Wait(ctxT(t)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		for i := 0; i < 64; i++ {
			<-got
		}
		if err := tx.Go(ps[0].Message()).Wait(ctxT(t)); err != nil {
			t.Fatalf("resend after completion: %v", err)
		}
	}
}

func TestSendingAMessageInFlightIsErrInUse(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.Receive = ReceiveQueue
	cfg.ManualRelease = true
	rx := startNode(t, cfg)
	tx := startNode(t, testConfig(false, nil))
	m, _ := NewMessage(addr(rx), []byte("once"))
	p := tx.Go(m)
	if err := tx.SendAsync(m, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("want ErrInUse, got %v", err)
	}
	got, _ := rx.Recv(ctxT(t))
	_ = got.Release()
	if err := p.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestManualReleaseWithWorkers(t *testing.T) {
	held := make(chan *Message, 1)
	cfg := testConfig(false, HandlerFunc(func(m *Message) { held <- m }))
	cfg.ManualRelease = true
	rx := startNode(t, cfg)
	tx := startNode(t, testConfig(false, nil))
	m, _ := NewMessage(addr(rx), []byte("mine"))
	p := tx.Go(m)
	h := <-held
	time.Sleep(50 * time.Millisecond) // the handler has returned; no auto release
	if !h.HasSlot() {
		t.Fatal("released although ManualRelease")
	}
	_ = h.Release()
	if err := p.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestHeaderTooLongForTheWireIsErrValue(t *testing.T) {
	n := startNode(t, testConfig(true, nil))
	m, _ := NewMessage(addr(n), nil)
	m.Header = make([]byte, 65536)
	if err := n.SendAsync(m, nil); !errors.Is(err, ErrValue) {
		t.Fatalf("65536-byte header: %v", err)
	}
	if m.inFlight.Load() {
		t.Fatal("refused message marked in flight")
	}
	m.Header = m.Header[:65535]
	if err := n.Send(ctxT(t), m); err != nil {
		t.Fatalf("65535-byte header: %v", err)
	}
}

// TestForgottenReleaseIsLoggedOnce: a message held past the timeout is
// named in a debug log line by the GC, once.
func TestForgottenReleaseIsLoggedOnce(t *testing.T) {
	lines, log := newLineLog()
	held := make(chan *Message, 1)
	cfg := testConfig(true, HandlerFunc(func(m *Message) { held <- m }))
	cfg.ManualRelease, cfg.Logger = true, log
	cfg.Timeout, cfg.ReuseTime = 100*time.Millisecond, 500*time.Millisecond
	rx := startNode(t, cfg)
	tx := startNode(t, testConfig(true, nil))
	m, _ := NewMessage(addr(rx), []byte("forget me"))
	if err := tx.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	h := <-held
	count := func() int { return len(lines.matching("message not released", m.Identity.String())) }
	eventually(t, 5*time.Second, "the GC names the forgotten message", func() bool { return count() == 1 })
	time.Sleep(600 * time.Millisecond) // at least one more GC tick
	if n := count(); n != 1 {
		t.Fatalf("logged %d times", n)
	}
	if rx.Stats().SlotsInUse != 1 {
		t.Fatalf("slots in use %d", rx.Stats().SlotsInUse)
	}
	_ = h.Release()
}

// lineLog keeps the text lines a debug-level logger writes, for tests that
// read them while the node runs.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func newLineLog() (*lineLog, *slog.Logger) {
	l := &lineLog{}
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

// matching returns the lines that contain every one of subs.
func (l *lineLog) matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var m []string
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		m = append(m, line)
	}
	return m
}

// TestPeerCloseIsDebug: a peer closing its connection in order is
// ordinary: logged at Debug, naming the peer and the cause once.
func TestPeerCloseIsDebug(t *testing.T) {
	lines, log := newLineLog()
	cfg := testConfig(false, nil)
	cfg.Logger = log
	rx := startNode(t, cfg)
	tx, err := Start(testConfig(false, nil))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMessage(addr(rx), []byte("bye"))
	if err := tx.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	if err := tx.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	closed := func() []string { return lines.matching("connection closed") }
	eventually(t, 5*time.Second, "the close is logged", func() bool { return len(closed()) > 0 })
	for _, l := range closed() {
		if !strings.Contains(l, "level=DEBUG") || strings.Count(l, "closed the connection") > 1 {
			t.Errorf("peer's close logged as %q", l)
		}
	}
}
