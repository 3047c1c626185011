package node

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestReplyReleasedBeforeItsSendFinishedKeepsItsBytes: a handler that
// replies with SendAsync and returns at once gets its message released
// (automatic release) while the reply is still being sent. The slot, and
// the buffer the reply's bytes live in, must stay until the send finished,
// or other messages would overwrite them.
func TestReplyReleasedBeforeItsSendFinishedKeepsItsBytes(t *testing.T) {
	for _, async := range []bool{false, true} {
		var en *Node
		cfg := testConfig(async, HandlerFunc(func(m *Message) { _ = en.SendAsync(m, nil) }))
		en = startNode(t, cfg)
		cli := startNode(t, testConfig(async, nil))
		body := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("<%04d>", i)), 3000) }
		var wg sync.WaitGroup
		for i := 0; i < 60; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, _ := NewMessage(addr(en), body(i))
				a, err := cli.Request(ctxT(t), m)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					return
				}
				if !bytes.Equal(a.Data, body(i)) {
					t.Errorf("reply %d corrupted: starts %q", i, a.Data[:12])
				}
			}()
		}
		wg.Wait()
		eventually(t, 5*time.Second, "echo node releases every slot", func() bool { return en.Stats().SlotsInUse == 0 })
	}
}
