package node

import (
	"sync"
)

// inbox carries sends and releases from any goroutine to the loop without
// allocating: operations go into a slice under a lock and one prebuilt
// closure drains it, submitted once per burst.
type inbox struct {
	mu        sync.Mutex
	ops       []inboxOp
	spare     []inboxOp // loop-owned
	draining  bool      // loop-owned: drainInbox runs
	scheduled bool
	drainFn   func()
	closed    bool  // the loop is gone: post fails ops itself, with err
	err       error // set with closed
}

type inboxOp struct {
	m        *Message
	release  bool         // else: send
	withdraw chan<- error // not nil: withdraw the send of m, answer here
}

func (n *Node) initInbox() { n.in.drainFn = n.drainInbox }

// post hands op to the loop. Once the loop is gone, a send fails with
// ErrShutdown here, on the caller's goroutine.
func (n *Node) post(op inboxOp) {
	in := &n.in
	in.mu.Lock()
	if in.closed {
		err := in.err
		in.mu.Unlock()
		n.failOp(op, err)
		return
	}
	in.ops = append(in.ops, op)
	wake := !in.scheduled
	in.scheduled = true
	in.mu.Unlock()
	if wake {
		// If Submit fails, the loop is gone, and whoever ends the node
		// (Close, or watchLoop) fails what the inbox holds in closeInbox:
		// one goroutine, so finishing does not race with the loop's owner.
		_ = n.r.Submit(in.drainFn)
	}
}

// closeInbox fails what the inbox holds with err, and makes post fail
// later sends itself. It runs once the loop is gone, on the goroutine
// that owns the node's loop state then.
func (n *Node) closeInbox(err error) {
	in := &n.in
	for {
		in.mu.Lock()
		if in.closed {
			in.mu.Unlock()
			return
		}
		ops := in.ops
		in.ops = nil
		if len(ops) == 0 {
			in.closed, in.err = true, err
		}
		in.mu.Unlock()
		for _, o := range ops {
			n.failOp(o, err)
		}
	}
}

func (n *Node) drainInbox() {
	in := &n.in
	if in.draining {
		// An op of the running drain led here (a send that finished
		// resumed a connection, whose decode hands over): what was
		// posted since waits for the next drain, already submitted.
		return
	}
	in.draining = true
	defer func() { in.draining = false }()
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

// failOp answers op once the loop is gone: a send fails with err, a
// withdrawal finds the send kept (it failed or fails with err), a release
// has nothing left to do.
func (n *Node) failOp(o inboxOp, err error) {
	if o.withdraw != nil {
		o.withdraw <- errKept
	} else if !o.release {
		n.finish(o.m, err)
	}
}
