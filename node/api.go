package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochirp/chirp/codec"
)

// ReceiveMode is how received messages reach the application.
type ReceiveMode int

const (
	// ReceiveWorkers runs Config.Handler on a bounded pool of goroutines.
	ReceiveWorkers ReceiveMode = iota
	// ReceiveQueue keeps received messages for Node.Recv (pipelines).
	ReceiveQueue
	// ReceiveInline runs Config.Handler on the event loop: the fastest
	// path. The handler must not block (no Send, no waiting on channels):
	// every connection of the node waits while it runs. Use SendAsync.
	ReceiveInline
)

// String names the mode.
func (m ReceiveMode) String() string {
	switch m {
	case ReceiveWorkers:
		return "workers"
	case ReceiveQueue:
		return "queue"
	case ReceiveInline:
		return "inline"
	}
	return fmt.Sprintf("ReceiveMode(%d)", int(m))
}

// Pending is a send in progress, from Node.Go.
type Pending struct {
	msg  *Message
	done chan struct{}
	err  error
}

// Done is closed when the send finished.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Err is the send's result, valid once Done is closed.
func (p *Pending) Err() error {
	<-p.done
	return p.err
}

// Message is the message being sent.
func (p *Pending) Message() *Message { return p.msg }

// Wait waits until the send finished or ctx ended (then it returns ctx's
// error and the send goes on: unlike Send, Wait does not withdraw it).
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Go starts sending m and returns at once; the Pending reports the result
// (ErrQueueFull at once when Config.MaxPending sends are pending). Many
// sends can be in flight from one goroutine this way.
func (n *Node) Go(m *Message) *Pending {
	p := &Pending{msg: m, done: make(chan struct{})}
	if err := n.SendAsync(m, func(_ *Message, err error) { p.err = err; close(p.done) }); err != nil {
		p.err = err
		close(p.done)
	}
	return p
}

// Recv returns the next received message (Config.Receive must be
// ReceiveQueue). With automatic release the message is a copy whose slot
// is already released; with ManualRelease it holds its slot (Header and
// Data alias it) and the caller releases it. Recv fails with ErrShutdown
// once the node is closed, or with ctx's error.
func (n *Node) Recv(ctx context.Context) (*Message, error) {
	if n.s.Receive != ReceiveQueue {
		return nil, fmt.Errorf("%w: Recv needs Config.Receive = ReceiveQueue", ErrValue)
	}
	m, err := n.recvQ.pop(ctx)
	if err != nil {
		return nil, err
	}
	if n.s.ManualRelease {
		return m, nil
	}
	c := m.detached()
	m.autoRelease() // nobody else saw m: it is reused
	return c, nil
}

// detached copies m without its slot: header and data are fresh copies.
func (m *Message) detached() *Message {
	c := &Message{Identity: m.Identity, Serial: m.Serial, Addr: m.Addr, RemoteIdentity: m.RemoteIdentity,
		node: m.node}
	buf := make([]byte, len(m.Header)+len(m.Data))
	copy(buf, m.Header)
	copy(buf[len(m.Header):], m.Data)
	c.Header, c.Data = buf[:len(m.Header):len(m.Header)], buf[len(m.Header):]
	return c
}

// Request sends m and returns the first message that comes back with the
// same identity (a reply is the request sent back). It waits until ctx's
// deadline, or, if ctx has none, for the node's Timeout. When ctx ends,
// the error wraps ctx's error; when the node's Timeout ends, it wraps
// ErrTimeout (never context.DeadlineExceeded). If m was not written yet
// then, it is withdrawn as in Send; else it stays in use until its send
// finished. At Config.MaxPending pending sends Request waits for room
// first, within the same deadline. The answer is a copy and its slot is
// already released. An answer that comes later is delivered as an
// ordinary message. Safe for many concurrent requests.
func (n *Node) Request(ctx context.Context, m *Message) (*Message, error) {
	ctx, cancel := n.requestContext(ctx)
	defer cancel()
	a, sent, err := n.request(ctx, m)
	if err != nil {
		return nil, err
	}
	c := a.detached()
	_ = a.Release()
	// In synchronous mode the request's ACK usually follows our release of
	// the answer: wait for it, so m may be reused when Request returns.
	select {
	case <-sent:
	case <-ctx.Done():
	}
	return c, nil
}

// RequestHeld is Request with the answer still holding its slot (zero
// copy): the caller must release it. It returns as soon as the answer is
// there, so m may still be in flight (its ACK can depend on that release).
func (n *Node) RequestHeld(ctx context.Context, m *Message) (*Message, error) {
	ctx, cancel := n.requestContext(ctx)
	defer cancel()
	a, _, err := n.request(ctx, m)
	return a, err
}

// errNodeTimeout is the cause of a request context that ended at the
// node's Timeout rather than the caller's deadline.
var errNodeTimeout = errors.New("node timeout")

// requestContext gives ctx the node's Timeout as its deadline if it has
// none; context.Cause then tells the two apart.
func (n *Node) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, n.s.timeout, errNodeTimeout)
}

func (n *Node) request(ctx context.Context, m *Message) (*Message, <-chan struct{}, error) {
	ch := make(chan *Message, 1)
	sent := make(chan struct{})
	if !n.waiters.add(m.Identity, ch) {
		return nil, nil, fmt.Errorf("%w: a request with identity %s is already waiting", ErrInUse, m.Identity)
	}
	defer n.waiters.remove(m.Identity, ch)
	if err := n.submit(ctx, m, func(_ *Message, err error) {
		close(sent)
		if err != nil {
			n.waiters.fail(m.Identity, ch, err)
		}
	}, nil); err != nil {
		if cerr := ctx.Err(); cerr != nil && err == cerr { // waited for room in vain
			return nil, nil, n.requestEnded(ctx, m, true)
		}
		return nil, nil, err
	}
	select {
	case a := <-ch:
		if a.err != nil {
			return nil, nil, a.err
		}
		return a, sent, nil
	case <-ctx.Done():
		if n.waiters.remove(m.Identity, ch) {
			reply := make(chan error, 1)
			n.post(inboxOp{m: m, withdraw: reply})
			return nil, nil, n.requestEnded(ctx, m, <-reply == errWithdrawn)
		}
		// The answer was handed over just now: take it.
		a := <-ch
		if a.err != nil {
			return nil, nil, a.err
		}
		return a, sent, nil
	}
}

// requestEnded is Request's error when ctx ended, withdrawn telling
// whether m never went out.
func (n *Node) requestEnded(ctx context.Context, m *Message, withdrawn bool) error {
	what := "no answer"
	if withdrawn {
		what = "not sent"
	}
	if context.Cause(ctx) == errNodeTimeout {
		return fmt.Errorf("%w: request to %s: %s within %v", ErrTimeout, m.Addr, what, n.s.timeout)
	}
	return fmt.Errorf("request to %s: %s: %w", m.Addr, what, ctx.Err())
}

// waiters maps request identities to the channel of the waiting Request.
type waiters struct {
	n  atomic.Int32 // fast path: no lock while nobody waits
	mu sync.Mutex
	m  map[codec.Identity]chan *Message
}

func (w *waiters) add(id codec.Identity, ch chan *Message) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.m[id]; ok {
		return false
	}
	if w.m == nil {
		w.m = make(map[codec.Identity]chan *Message)
	}
	w.m[id] = ch
	w.n.Add(1)
	return true
}

// remove reports whether ch was still registered.
func (w *waiters) remove(id codec.Identity, ch chan *Message) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m[id] != ch {
		return false
	}
	delete(w.m, id)
	w.n.Add(-1)
	return true
}

// fail ends a waiting Request with the send's error.
func (w *waiters) fail(id codec.Identity, ch chan *Message, err error) {
	if w.remove(id, ch) {
		ch <- &Message{err: err}
	}
}

// take hands m to a waiting Request, if there is one (loop).
func (w *waiters) take(m *Message) bool {
	if w.n.Load() == 0 {
		return false
	}
	w.mu.Lock()
	ch, ok := w.m[m.Identity]
	if ok {
		delete(w.m, m.Identity)
		w.n.Add(-1)
	}
	w.mu.Unlock()
	if ok {
		ch <- m // buffered, and only one answer is ever sent to it
	}
	return ok
}

// msgQueue is the unbounded queue behind Recv; it is bounded in practice
// by the slots of all connections, since every queued message holds one.
type msgQueue struct {
	mu     sync.Mutex
	q      deque[*Message]
	ready  chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newMsgQueue() *msgQueue {
	return &msgQueue{ready: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (q *msgQueue) push(m *Message) {
	q.mu.Lock()
	q.q.push(m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *msgQueue) pop(ctx context.Context) (*Message, error) {
	for {
		q.mu.Lock()
		if q.q.len() > 0 {
			m := q.q.pop()
			more := q.q.len() > 0
			q.mu.Unlock()
			if more {
				select {
				case q.ready <- struct{}{}:
				default:
				}
			}
			return m, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-q.closed:
			return nil, fmt.Errorf("%w: node closed", ErrShutdown)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (q *msgQueue) close() { q.once.Do(func() { close(q.closed) }) }

// deliver hands a received message to the application (loop).
//
// With automatic release the message goes back to msgPool once the node
// released it and nothing of the application can hold it any more: the
// handler returned (inline, workers) and the slot is free (after a send
// made of it finished). Request answers and messages with ManualRelease
// stay with the application and are never reused.
func (n *Node) deliver(m *Message) {
	m.refs.Store(keepForever)
	if n.waiters.take(m) {
		n.readied = true
		return
	}
	n.trackHeld(m)
	auto := !n.s.ManualRelease
	switch {
	case n.s.Receive == ReceiveQueue:
		if auto {
			m.refs.Store(1) // the slot; Recv hands out a copy
		}
		n.recvQ.push(m)
		n.readied = true
	case n.s.Receive == ReceiveInline:
		if auto {
			m.refs.Store(2) // the handler and the slot
		}
		if !n.serve(n.s.Handler, m, true) && auto && m.held.CompareAndSwap(true, false) {
			n.release(m)
		}
		if auto {
			m.unref() // the handler's reference: m may be reused now
		}
	case n.s.Handler == nil: // workers without a handler: nobody sees m
		m.refs.Store(1)
		m.held.Store(false)
		n.release(m)
	default:
		if auto {
			m.refs.Store(2) // the handler and the slot
		}
		n.work.push(m)
		n.handedOut = true
	}
}

// handOver is called between the parts of a burst (see splitBurst). If
// messages of the part went to goroutines that may not have run yet
// (handler workers that have not taken theirs, Request callers, Recv),
// they run on the loop's thread now (Reactor.Yield) and the sends and
// releases they posted are taken, so that their replies and next requests
// leave with this part rather than after the whole read. On the loop.
func (n *Node) handOver() {
	run := n.readied || n.handedOut && n.work.waiting()
	n.handedOut, n.readied = false, false
	if run && n.r.Yield() {
		n.drainInbox()
	}
}

// trackHeld remembers m by its slot, and when it was delivered, so the GC
// can name messages nobody released (loop). No map: a slot index is enough.
func (n *Node) trackHeld(m *Message) {
	m.delivered = m.conn.active // set by decode for this read: no clock read per message
	m.conn.held[m.slot.Index()] = m
}

// logForgotten logs, at debug level, messages held longer than the
// timeout, once each (loop).
func (n *Node) logForgotten(now time.Time) {
	for c := range n.conns {
		for _, m := range c.held {
			if m != nil && !m.heldLogged && now.Sub(m.delivered) > n.s.timeout {
				m.heldLogged = true
				n.log.Debug("chirp: message not released", "msg", m.String(), "held", now.Sub(m.delivered))
			}
		}
	}
}
