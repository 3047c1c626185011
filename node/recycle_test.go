package node

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestRecycledMessagesAndStaleRelease pins the rules of message reuse:
// messages the node released itself (automatic release, after the handler
// returned) are reused for later messages, while a message the application
// released itself is never reused, so a second Release on it, even after
// many later messages were received and recycled, returns ErrNotHeld and
// touches no other message.
func TestRecycledMessagesAndStaleRelease(t *testing.T) {
	for _, mode := range []ReceiveMode{ReceiveWorkers, ReceiveInline} {
		t.Run(mode.String(), func(t *testing.T) {
			var (
				mu       sync.Mutex
				kept     *Message
				firstErr error
				second   error
				seen     []*Message // node-released messages, by pointer
			)
			holding := make(chan *Message, 1)
			unblock := make(chan struct{})
			rx := startNode(t, func() Config {
				cfg := testConfig(false, HandlerFunc(func(m *Message) {
					switch string(m.Data) {
					case "keep":
						mu.Lock()
						kept, firstErr = m, m.Release()
						second = m.Release()
						mu.Unlock()
					case "hold": // workers only: blocks until the stale Release was tried
						holding <- m
						<-unblock
					default:
						mu.Lock()
						seen = append(seen, m)
						mu.Unlock()
					}
				}))
				cfg.Receive = mode
				return cfg
			}())
			tx := startNode(t, testConfig(false, nil))
			send := func(data string) {
				t.Helper()
				m, _ := NewMessage(addr(rx), []byte(data))
				if err := tx.Send(ctxT(t), m); err != nil {
					t.Fatalf("send %q: %v", data, err)
				}
			}
			send("keep")
			const others = 100
			for i := 0; i < others; i++ {
				send("other")
			}
			mu.Lock()
			if firstErr != nil || !errors.Is(second, ErrNotHeld) {
				t.Errorf("in the handler: first Release %v, second %v; want nil and ErrNotHeld", firstErr, second)
			}
			distinct := map[*Message]bool{}
			for _, m := range seen {
				if m == kept {
					t.Fatalf("the message the handler released itself was reused")
				}
				distinct[m] = true
			}
			mu.Unlock()
			// Recycling works: 100 messages, one at a time, did not need 100
			// structs.
			if len(distinct) > others/2 {
				t.Errorf("%d messages used %d structs: received messages are not recycled", others, len(distinct))
			}

			var held *Message
			if mode == ReceiveWorkers {
				// A message held right now (its handler blocks).
				m, _ := NewMessage(addr(rx), []byte("hold"))
				p := tx.Go(m)
				select {
				case held = <-holding:
				case <-time.After(5 * time.Second):
					t.Fatal("the hold message did not arrive")
				}
				if got := rx.Stats().SlotsInUse; got != 1 {
					t.Fatalf("SlotsInUse %d with one message held", got)
				}
				defer func() {
					close(unblock)
					if err := p.Wait(ctxT(t)); err != nil {
						t.Errorf("hold message: %v", err)
					}
				}()
			}
			// The stale Release, after all that recycling.
			if err := kept.Release(); !errors.Is(err, ErrNotHeld) {
				t.Errorf("stale Release: %v, want ErrNotHeld", err)
			}
			if err := releaseOnLoop(rx, kept); !errors.Is(err, ErrNotHeld) {
				t.Errorf("stale ReleaseOnLoop: %v, want ErrNotHeld", err)
			}
			if held != nil {
				if held == kept {
					t.Fatal("the held message reuses the released one")
				}
				if !held.HasSlot() || rx.Stats().SlotsInUse != 1 {
					t.Errorf("the stale Release touched the held message: HasSlot %v, SlotsInUse %d",
						held.HasSlot(), rx.Stats().SlotsInUse)
				}
			}
		})
	}
}

// releaseOnLoop calls m.ReleaseOnLoop on n's loop and returns its
// result.
func releaseOnLoop(n *Node, m *Message) error {
	ch := make(chan error, 1)
	if err := n.r.Submit(func() { ch <- m.ReleaseOnLoop() }); err != nil {
		return err
	}
	return <-ch
}

// TestManualReleaseMessagesAreNeverReused: with ManualRelease the
// application owns every received message: none is reused, so a second
// Release is ErrNotHeld at any time.
func TestManualReleaseMessagesAreNeverReused(t *testing.T) {
	got := make(chan *Message, 64)
	cfg := testConfig(true, HandlerFunc(func(m *Message) { got <- m }))
	cfg.ManualRelease = true
	rx := startNode(t, cfg)
	tx := startNode(t, testConfig(true, nil))
	all := map[*Message]bool{}
	for i := 0; i < 40; i++ {
		m, _ := NewMessage(addr(rx), []byte("x"))
		if err := tx.Send(ctxT(t), m); err != nil {
			t.Fatal(err)
		}
		var r *Message
		select {
		case r = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
		if all[r] {
			t.Fatalf("message %d reuses an earlier one", i)
		}
		all[r] = true
		if err := r.Release(); err != nil {
			t.Fatal(err)
		}
	}
	for r := range all {
		if err := r.Release(); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("second Release: %v", err)
		}
	}
	eventually(t, 5*time.Second, "every slot free", func() bool { return rx.Stats().SlotsInUse == 0 })
}
