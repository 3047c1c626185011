package node

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkPass measures one pass: a message to an echo node and its echo
// back, over loopback, in one process, with inline handlers (the echo node
// is the zero-copy inline echo). inflight sends are kept in flight.
func BenchmarkPass(b *testing.B) {
	for _, async := range []bool{false, true} {
		for _, inflight := range []int{1, 16} {
			mode := "sync"
			if async {
				mode = "async"
			}
			b.Run(fmt.Sprintf("%s/inflight=%d", mode, inflight), func(b *testing.B) {
				ecfg, en := inlineEcho(async)
				*en = startNode(b, ecfg)
				echoes := make(chan struct{}, 1024)
				tcfg := testConfig(async, HandlerFunc(func(*Message) { echoes <- struct{}{} }))
				tcfg.Receive = ReceiveInline
				tx := startNode(b, tcfg)
				msgs := make([]*Message, inflight)
				for i := range msgs {
					msgs[i], _ = NewMessage(addr(*en), []byte("hello"))
				}
				sent := make(chan *Message, inflight)
				done := func(m *Message, err error) {
					if err != nil {
						b.Error(err)
					}
					sent <- m
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range msgs {
					if i < b.N {
						if err := tx.SendAsync(msgs[i], done); err != nil {
							b.Fatal(err)
						}
					}
				}
				issued := min(inflight, b.N)
				for got := 0; got < b.N; got++ {
					<-echoes
					m := <-sent
					if issued < b.N {
						issued++
						if err := tx.SendAsync(m, done); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StopTimer()
				_ = tx.Close(context.Background())
			})
		}
	}
}
