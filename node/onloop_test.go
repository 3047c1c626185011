package node

import (
	"fmt"
	"testing"
	"time"
)

// inlineEcho is the fastest echo: on the loop, zero copy, the received
// message sent back as is and released when that send finished.
func inlineEcho(async bool) (Config, **Node) {
	n := new(*Node)
	cfg := testConfig(async, HandlerFunc(func(m *Message) {
		if err := (*n).SendOnLoop(m, func(m *Message, _ error) { _ = m.ReleaseOnLoop() }); err != nil {
			_ = m.ReleaseOnLoop()
		}
	}))
	cfg.Receive, cfg.ManualRelease = ReceiveInline, true
	return cfg, n
}

func TestInlineZeroCopyEchoWithSendOnLoop(t *testing.T) {
	for _, async := range []bool{false, true} {
		cfg, en := inlineEcho(async)
		*en = startNode(t, cfg)
		cli := startNode(t, testConfig(async, nil))
		for i := 0; i < 20; i++ {
			m, _ := NewMessage(addr(*en), []byte(fmt.Sprintf("zero copy %d", i)))
			a, err := cli.Request(ctxT(t), m)
			if err != nil {
				t.Fatalf("async=%v: %v", async, err)
			}
			if string(a.Data) != fmt.Sprintf("zero copy %d", i) {
				t.Fatalf("answer %q", a.Data)
			}
		}
		// The echo node frees the slot right after its echo is written,
		// which may be just after the client got the echo.
		eventually(t, 5*time.Second, "echo node releases every slot", func() bool { return (*en).Stats().SlotsInUse == 0 })
	}
}

// TestSendOnLoopFromCompletionChainsSends: each completion sends the next
// message from the loop (process is re-entered through callbacks).
func TestSendOnLoopFromCompletionChainsSends(t *testing.T) {
	for _, async := range []bool{false, true} {
		got := make(chan struct{}, 1000)
		rx := startNode(t, testConfig(async, HandlerFunc(func(*Message) { got <- struct{}{} })))
		tx := startNode(t, testConfig(async, nil))
		const total = 300
		sent := 0
		errs := make(chan error, 1)
		var next func(*Message, error)
		next = func(m *Message, err error) {
			if err != nil {
				errs <- err
				return
			}
			sent++
			if sent == total {
				errs <- nil
				return
			}
			m.Data = []byte(fmt.Sprint(sent))
			if err := tx.SendOnLoop(m, next); err != nil {
				errs <- err
			}
		}
		m, _ := NewMessage(addr(rx), []byte("0"))
		if err := tx.SendAsync(m, next); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("chain stalled")
		}
		for i := 0; i < total; i++ {
			<-got
		}
	}
}
