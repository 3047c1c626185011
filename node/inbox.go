package node

import (
	"fmt"
	"sync"
)

// inbox carries sends and releases from any goroutine to the loop without
// allocating: operations go into a slice under a lock and one prebuilt
// closure drains it, submitted once per burst.
type inbox struct {
	mu        sync.Mutex
	ops       []inboxOp
	spare     []inboxOp // loop-owned
	scheduled bool
	drainFn   func()
}

type inboxOp struct {
	m        *Message
	release  bool         // else: send
	withdraw chan<- error // not nil: withdraw the send of m, answer here
}

func (n *Node) initInbox() { n.in.drainFn = n.drainInbox }

// post hands op to the loop. If the loop is gone, everything in the inbox
// fails with ErrShutdown here, on the caller's goroutine.
func (n *Node) post(op inboxOp) {
	in := &n.in
	in.mu.Lock()
	in.ops = append(in.ops, op)
	wake := !in.scheduled
	in.scheduled = true
	in.mu.Unlock()
	if !wake {
		return
	}
	if err := n.r.Submit(in.drainFn); err != nil {
		in.mu.Lock()
		ops := in.ops
		in.ops, in.scheduled = nil, false
		in.mu.Unlock()
		for _, o := range ops {
			if o.withdraw != nil {
				o.withdraw <- errKept
			} else if !o.release {
				n.finish(o.m, fmt.Errorf("%w: node closed", ErrShutdown))
			}
		}
	}
}

func (n *Node) drainInbox() {
	in := &n.in
	in.mu.Lock()
	ops := in.ops
	in.ops = in.spare[:0]
	in.scheduled = false
	in.mu.Unlock()
	if n.cork() {
		defer n.uncork()
	}
	for i, o := range ops {
		ops[i] = inboxOp{}
		if o.withdraw != nil {
			n.withdraw(o.m, o.withdraw)
		} else if o.release {
			n.release(o.m)
		} else {
			n.enqueue(o.m)
		}
	}
	in.spare = ops[:0]
}
