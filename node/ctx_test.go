package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// holder is a synchronous receiver that keeps every message until the test
// releases it: the sender's first message waits for its ACK, the next ones
// stay queued, unwritten.
func holder(t *testing.T) (*Node, chan *Message) {
	held := make(chan *Message, 16)
	cfg := testConfig(false, HandlerFunc(func(m *Message) { held <- m }))
	cfg.ManualRelease = true
	return startNode(t, cfg), held
}

// patient is a synchronous sender whose sends to a holder do not time out
// while a test takes its time, on a loaded machine too.
func patient() Config {
	cfg := testConfig(false, nil)
	cfg.Timeout = 5 * time.Second
	return cfg
}

func shortCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestSendWithdrawnWhenCtxEndsBeforeWrite: queued behind a message waiting
// for its ACK, or waiting for a connection, a send whose ctx ends is taken
// out of the queue: Send returns ctx's error, the message can be sent again
// at once, and it never reaches the remote twice.
func TestSendWithdrawnWhenCtxEndsBeforeWrite(t *testing.T) {
	t.Run("queued", func(t *testing.T) {
		rx, held := holder(t)
		tx := startNode(t, patient())
		first, _ := NewMessage(addr(rx), []byte("first"))
		p := tx.Go(first)
		h := <-held // written, waiting for its ACK
		second, _ := NewMessage(addr(rx), []byte("second"))
		start := time.Now()
		if err := tx.Send(shortCtx(t, 100*time.Millisecond), second); err != context.DeadlineExceeded {
			t.Fatalf("want context.DeadlineExceeded itself, got %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Send returned after %v", d)
		}
		p2 := tx.Go(second) // again, at once: not ErrInUse
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		h2 := <-held
		if string(h2.Data) != "second" {
			t.Fatalf("got %q", h2.Data)
		}
		_ = h2.Release()
		for _, p := range []*Pending{p, p2} {
			if err := p.Wait(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case m := <-held:
			t.Fatalf("%q arrived twice", m.Data)
		case <-time.After(100 * time.Millisecond):
		}
		if st := tx.Stats(); st.SendErrors != 0 {
			t.Fatalf("a withdrawal counted as %d send errors", st.SendErrors)
		}
	})
	t.Run("connecting", func(t *testing.T) {
		tx := startNode(t, testConfig(true, nil))
		dst, _ := acceptRaw(t, nil) // accepts, never handshakes
		m, _ := NewMessage(dst, []byte("never"))
		if err := tx.Send(shortCtx(t, 100*time.Millisecond), m); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want DeadlineExceeded, got %v", err)
		}
		if err := tx.SendAsync(m, func(*Message, error) {}); errors.Is(err, ErrInUse) {
			t.Fatalf("withdrawn message still in use: %v", err)
		}
	})
	t.Run("ended-before", func(t *testing.T) {
		got := make(chan struct{}, 1)
		rx := startNode(t, testConfig(true, HandlerFunc(func(*Message) { got <- struct{}{} })))
		tx := startNode(t, testConfig(true, nil))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m, _ := NewMessage(addr(rx), []byte("too late"))
		if err := tx.Send(ctx, m); err != context.Canceled {
			t.Fatalf("want context.Canceled, got %v", err)
		}
		select {
		case <-got:
			t.Fatal("a send whose context had ended went out")
		case <-time.After(100 * time.Millisecond):
		}
	})
	t.Run("canceled", func(t *testing.T) {
		tx := startNode(t, testConfig(false, nil))
		dst, _ := acceptRaw(t, nil)
		m, _ := NewMessage(dst, []byte("never"))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		if err := tx.Send(ctx, m); err != context.Canceled {
			t.Fatalf("want context.Canceled, got %v", err)
		}
		if m.inFlight.Load() {
			t.Fatal("withdrawn message still in flight")
		}
	})
}

// TestSendWrittenGoesOnAfterCtxEnds: a written message is not withdrawn;
// Send returns ctx's error, and the message stays in use until its send
// finished (here: the release's ACK).
func TestSendWrittenGoesOnAfterCtxEnds(t *testing.T) {
	rx, held := holder(t)
	tx := startNode(t, patient())
	m, _ := NewMessage(addr(rx), []byte("written"))
	if err := tx.Send(shortCtx(t, 200*time.Millisecond), m); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	h := <-held
	if err := tx.SendAsync(m, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("written message not in use: %v", err)
	}
	_ = h.Release()
	eventually(t, 5*time.Second, "the send finished on the ACK", func() bool { return !m.inFlight.Load() })
	if st := tx.Stats(); st.SendErrors != 0 || st.AcksIn != 1 {
		t.Fatalf("send errors %d, ACKs in %d; want 0, 1", st.SendErrors, st.AcksIn)
	}
}

// TestRequestTellsCallerDeadlineFromNodeTimeout: the caller's ctx is
// honoured beyond the node's Timeout, its end wraps ctx's error, and the
// node's Timeout (when ctx has no deadline) wraps ErrTimeout only.
func TestRequestTellsCallerDeadlineFromNodeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	// An asynchronous server that answers 3 node-Timeouts late, from a
	// copy, so the request's own send is done long before.
	slow := HandlerFunc(func(m *Message) {
		r := m.detached()
		time.AfterFunc(3*timeout, func() { _ = r.node.SendAsync(r, nil) })
	})
	silent := HandlerFunc(func(*Message) {})
	srvCfg := testConfig(true, slow)
	srv := startNode(t, srvCfg)
	mute := startNode(t, testConfig(true, silent))
	cliCfg := testConfig(true, nil)
	cliCfg.Timeout = timeout
	cli := startNode(t, cliCfg)

	m, _ := NewMessage(addr(srv), []byte("take your time"))
	if a, err := cli.Request(ctxT(t), m); err != nil || string(a.Data) != "take your time" {
		t.Fatalf("a 10 s ctx was not honoured past the node's %v Timeout: %v", timeout, err)
	}

	m, _ = NewMessage(addr(mute), []byte("anyone?"))
	start := time.Now()
	_, err := cli.Request(context.Background(), m)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("node timeout: want ErrTimeout and not DeadlineExceeded, got %v", err)
	}
	if d := time.Since(start); d < timeout || d > 10*timeout {
		t.Fatalf("node timeout after %v, want about %v", d, timeout)
	}

	m, _ = NewMessage(addr(mute), []byte("anyone?"))
	_, err = cli.Request(shortCtx(t, 100*time.Millisecond), m)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Fatalf("caller deadline: want DeadlineExceeded and not ErrTimeout, got %v", err)
	}
}

// TestRequestWithdrawnWhenCtxEndsBeforeWrite: as Send.
func TestRequestWithdrawnWhenCtxEndsBeforeWrite(t *testing.T) {
	tx := startNode(t, testConfig(false, nil))
	dst, _ := acceptRaw(t, nil)
	m, _ := NewMessage(dst, []byte("never"))
	_, err := tx.Request(shortCtx(t, 100*time.Millisecond), m)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("want a not-sent DeadlineExceeded, got %v", err)
	}
	if m.inFlight.Load() {
		t.Fatal("withdrawn request still in flight")
	}
}

// TestCloseSaysHowManySendsItFailed: Close's deadline ends with sends
// queued; its error wraps ErrShutdown and ctx's error and counts them.
func TestCloseSaysHowManySendsItFailed(t *testing.T) {
	tx, err := Start(testConfig(false, nil))
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := acceptRaw(t, nil)
	var ps []*Pending
	for i := 0; i < 3; i++ {
		m, _ := NewMessage(dst, []byte("stuck"))
		ps = append(ps, tx.Go(m))
	}
	err = tx.Close(shortCtx(t, 200*time.Millisecond))
	if !errors.Is(err, ErrShutdown) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "failed 3 pending sends") {
		t.Fatalf("Close: %v", err)
	}
	for _, p := range ps {
		if err := p.Err(); !errors.Is(err, ErrShutdown) {
			t.Fatalf("pending send: %v", err)
		}
	}
	// Nothing pending: nil.
	idle, err := Start(testConfig(false, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(shortCtx(t, 200*time.Millisecond)); err != nil {
		t.Fatalf("idle Close: %v", err)
	}
}

// TestSendWatchesItsContextWithoutAllocating: Send adds no allocation for
// its ctx, whether ctx can end (WithCancel) or not (Background). The one
// allocation per message is the receiver's Message.
func TestSendWatchesItsContextWithoutAllocating(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	rx := startNode(t, testConfig(true, nil))
	tx := startNode(t, testConfig(true, nil))
	m, _ := NewMessage(addr(rx), []byte("hello"))
	cancelable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ctx := range []context.Context{context.Background(), cancelable} {
		_ = tx.Send(ctx, m) // connect first
		allocs := testing.AllocsPerRun(200, func() {
			if err := tx.Send(ctx, m); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 1 {
			t.Errorf("Send with %v: %v allocations per message, want at most 1 (the receiver's)", ctx, allocs)
		}
	}
}

// TestSendRetriedTheMomentItsWrittenSendFinishes: after Send gave up on a
// written message, a retry spins on ErrInUse; the retry that gets m must
// wait for its own result, not take the earlier send's.
func TestSendRetriedTheMomentItsWrittenSendFinishes(t *testing.T) {
	rx, held := holder(t)
	tx := startNode(t, patient())
	m, _ := NewMessage(addr(rx), []byte("again"))
	if err := tx.Send(shortCtx(t, 100*time.Millisecond), m); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	h := <-held
	result := make(chan error, 1)
	go func() {
		for {
			err := tx.Send(ctxT(t), m)
			if !errors.Is(err, ErrInUse) {
				result <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	_ = h.Release() // the first send finishes; the spinning retry takes m
	h2 := <-held
	select {
	case err := <-result:
		t.Fatalf("the retry returned %v before its message was released", err)
	case <-time.After(200 * time.Millisecond):
	}
	_ = h2.Release()
	if err := <-result; err != nil {
		t.Fatal(err)
	}
}
