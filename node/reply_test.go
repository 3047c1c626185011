package node

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestReplyNeedsNoVariableForTheNode: a handler replies through the message
// (m.Reply, m.Node) while Start may not have returned yet; under -race this
// is the idiom that must be race-free. The reply keeps identity and header.
func TestReplyNeedsNoVariableForTheNode(t *testing.T) {
	for _, async := range []bool{false, true} {
		nodes := make(chan *Node, 1)
		srv := startNode(t, testConfig(async, HandlerFunc(func(m *Message) {
			select {
			case nodes <- m.Node():
			default:
			}
			if err := m.Reply(context.Background(), bytes.ToUpper(m.Data)); err != nil {
				t.Errorf("reply: %v", err)
			}
		})))
		cli := startNode(t, testConfig(async, nil))
		m, _ := NewMessage(addr(srv), []byte("shout"))
		m.Header = []byte("method=upper")
		a, err := cli.Request(ctxT(t), m)
		if err != nil {
			t.Fatal(err)
		}
		if string(a.Data) != "SHOUT" || a.Identity != m.Identity || string(a.Header) != "method=upper" {
			t.Fatalf("answer %q header %q identity %v, want SHOUT, method=upper, %v", a.Data, a.Header, a.Identity, m.Identity)
		}
		if got := <-nodes; got != srv {
			t.Fatalf("m.Node() = %p, want the receiving node %p", got, srv)
		}
	}
}

// TestReplyFromARecvCopy: Recv's copies know their node too.
func TestReplyFromARecvCopy(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.Receive = ReceiveQueue
	srv := startNode(t, cfg)
	cli := startNode(t, testConfig(false, nil))
	replied := make(chan struct{})
	go func() {
		defer close(replied)
		m, err := srv.Recv(ctxT(t))
		if err != nil {
			t.Error(err)
			return
		}
		if err := m.Reply(ctxT(t), append(m.Data, '!')); err != nil {
			t.Error(err)
		}
	}()
	m, _ := NewMessage(addr(srv), []byte("hi"))
	a, err := cli.Request(ctxT(t), m)
	if err != nil || string(a.Data) != "hi!" {
		t.Fatalf("answer %q, %v", a.Data, err)
	}
	<-replied
}

func TestReplyToAMessageNeverReceivedIsErrValue(t *testing.T) {
	m, _ := NewMessage("127.0.0.1:9", []byte("x"))
	if m.Node() != nil {
		t.Fatal("a new message has a node")
	}
	if err := m.Reply(context.Background(), nil); !errors.Is(err, ErrValue) {
		t.Fatalf("want ErrValue, got %v", err)
	}
}
