package node

import (
	"strings"
	"testing"
)

// TestHandlerPanicIsRecoveredLoggedAndReleased: a panicking handler does not
// kill the process; the panic is logged with its stack and counted, the
// message is released (the synchronous sender gets its ACK), and the next
// message is handled. Workers and inline, automatic and manual release.
func TestHandlerPanicIsRecoveredLoggedAndReleased(t *testing.T) {
	for _, c := range []struct {
		name   string
		mode   ReceiveMode
		manual bool
	}{{"workers", ReceiveWorkers, false}, {"workers-manual", ReceiveWorkers, true},
		{"inline", ReceiveInline, false}, {"inline-manual", ReceiveInline, true}} {
		t.Run(c.name, func(t *testing.T) {
			logged, log := newLineLog()
			got := make(chan string, 1)
			cfg := testConfig(false, HandlerFunc(func(m *Message) {
				if string(m.Data) == "boom" {
					panicInHandler()
				}
				got <- string(m.Data)
				if c.manual {
					if c.mode == ReceiveInline {
						_ = m.ReleaseOnLoop()
					} else {
						_ = m.Release()
					}
				}
			}))
			cfg.Receive, cfg.ManualRelease, cfg.Logger = c.mode, c.manual, log
			rx := startNode(t, cfg)
			tx := startNode(t, testConfig(false, nil))

			boom, _ := NewMessage(addr(rx), []byte("boom"))
			// Synchronous: Send returns nil only once rx released the message.
			if err := tx.Send(ctxT(t), boom); err != nil {
				t.Fatalf("send to a panicking handler: %v", err)
			}
			ok, _ := NewMessage(addr(rx), []byte("after"))
			if err := tx.Send(ctxT(t), ok); err != nil {
				t.Fatalf("send after the panic: %v", err)
			}
			if s := <-got; s != "after" {
				t.Fatalf("handled %q", s)
			}
			st := rx.Stats()
			if st.HandlerPanics != 1 || st.SlotsInUse != 0 {
				t.Fatalf("HandlerPanics %d, SlotsInUse %d; want 1, 0", st.HandlerPanics, st.SlotsInUse)
			}
			text := strings.Join(logged.matching(), "")
			for _, want := range []string{"level=ERROR", "handler panicked", "panic=\"handler bug\"", "panicInHandler", boom.Identity.String()} {
				if !strings.Contains(text, want) {
					t.Errorf("log lacks %q:\n%s", want, text)
				}
			}
		})
	}
}

// panicInHandler is a named frame the logged stack must show.
//
//go:noinline
func panicInHandler() { panic("handler bug") }
