package node

import (
	"context"
	"fmt"
)

// The bound on pending sends (Config.MaxPending) and the withdrawal of a
// send whose context ended. n.pending counts sends accepted and not
// finished; admit raises it under the bound, unpend lowers it when a send
// finished and wakes one waiting Send, which passes the wake-up on while
// there is room, so waiters need neither a lock nor an allocation.

// tryAdmit takes a place for one send if there is one.
func (n *Node) tryAdmit() bool {
	for {
		p := n.pending.Load()
		if p >= n.s.maxPending {
			return false
		}
		if n.pending.CompareAndSwap(p, p+1) {
			return true
		}
	}
}

// admit takes a place for one send. With ctx nil it fails at once with
// ErrQueueFull when there is none; else it waits until there is, ctx ends
// (its error) or the node closes (ErrShutdown).
func (n *Node) admit(ctx context.Context) error {
	if n.tryAdmit() {
		return nil
	}
	if ctx == nil {
		return ErrQueueFull
	}
	for {
		// Register before the last look, so that unpend either sees us or
		// freed the place we find now.
		n.spaceWaiters.Add(1)
		if n.closed.Load() {
			n.spaceWaiters.Add(-1)
			n.wakeWaiter() // the next waiter sees it too
			return fmt.Errorf("%w: node closed", ErrShutdown)
		}
		if n.tryAdmit() {
			n.spaceWaiters.Add(-1)
			n.passSpace()
			return nil
		}
		select {
		case <-n.space:
			n.spaceWaiters.Add(-1)
		case <-ctx.Done():
			n.spaceWaiters.Add(-1)
			return ctx.Err()
		}
	}
}

// unpend gives back the place of a finished send.
func (n *Node) unpend() {
	if n.pending.Add(-1) < n.s.maxPending && n.spaceWaiters.Load() > 0 {
		n.wakeWaiter()
	}
}

// passSpace wakes the next waiter if there is still room: one unpend wakes
// one waiter, however many places several unpends freed meanwhile.
func (n *Node) passSpace() {
	if n.spaceWaiters.Load() > 0 && n.pending.Load() < n.s.maxPending {
		n.wakeWaiter()
	}
}

func (n *Node) wakeWaiter() {
	select {
	case n.space <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// withdraw takes m out of its remote's queue if none of it was written yet
// and finishes it with errWithdrawn; it answers on reply with errWithdrawn
// or errKept (loop). A send that is written, or finished already, is left
// alone. The withdraw is posted after the send, so m was enqueued.
func (n *Node) withdraw(m *Message, reply chan<- error) {
	if rem := m.remote; rem != nil && rem.queue.remove(func(q *Message) bool { return q == m }) {
		n.finish(m, errWithdrawn)
		reply <- errWithdrawn
		return
	}
	reply <- errKept
}

// waitWithdrawn waits, after ctx ended, for the answer to the withdrawal of
// m's send, whose results come on ch (Send's). It returns the error Send
// returns and whether ch may be reused (nothing more will come on it).
func waitWithdrawn(ctx context.Context, ch chan error) (error, bool) {
	var result error
	finished := false
	for {
		switch v := <-ch; v {
		case errWithdrawn: // its result, the withdrawal, came before
			return ctx.Err(), true
		case errKept:
			if finished { // it finished before the withdraw reached the loop
				return result, true
			}
			return ctx.Err(), false // written: it goes on, its result comes later
		default:
			result, finished = v, true
		}
	}
}
