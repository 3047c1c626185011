package node

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Router is a Handler that makes its node a router: it forwards every
// message it receives to one of its workers and routes the workers' replies
// back to where the message came from (see the package guide, Routing).
//
// A received message is forwarded as it is (same Identity, Header and
// Data, no copy) and keeps its slot until the forward finished. Only then
// is it released, and only if the forward succeeded: a synchronous sender
// learns of the release when the worker released the message, so
// throttling passes through the router. A forward that fails is never
// acknowledged: its slot is freed without the ACK, so a synchronous sender
// fails with ErrTimeout (its own Timeout) instead of succeeding for a
// message no worker took.
//
// Replies find their way back because the router keeps, for every
// forwarded identity, where the message came from: a message that arrives
// from the worker it was forwarded to, with the same identity, is the
// reply, and goes to that origin, again held until that send finished. A
// route is kept until its reply passed, or for the router node's Timeout
// after the forward finished (a worker may reply after it released the
// message), or dropped at once when the forward failed. So one-way
// traffic (no replies) keeps about rate × Timeout routes, some 100 bytes
// each, and any traffic rate × Timeout expiry entries of 24 bytes, which
// hold no pointers (the garbage collector does not scan them). A message
// from a worker that answers no route is dropped without its ACK
// (Unroutable).
//
// Work goes to the least-loaded worker, the one with the fewest forwards
// in flight (queued or awaiting their ACK), ties taken in turn, so equal
// workers get work round robin and a stalled one gets none until its
// forwards failed. A worker whose forward failed is passed over for the
// router node's Timeout while another is left: a dead worker fails its
// forwards at once, and would otherwise look the least loaded of all.
//
// Use it as Config.Handler with ReceiveInline (nothing blocks: the fastest
// router) or ReceiveWorkers, with or without ManualRelease; it does the
// releasing itself. A synchronous router (the default) is what a
// synchronous producer needs: an asynchronous one completes its forwards
// when they are written, so the release, and the producer's send, no
// longer waits for the worker.
type Router struct {
	workers []netip.AddrPort
	load    []atomic.Int64 // forwards in flight, per worker
	// shunned: until when (Node.mono) a worker whose forward failed is
	// passed over
	shunned []atomic.Int64
	turn    atomic.Uint32 // where the search for the least-loaded worker starts

	mu       sync.Mutex
	routes   map[Identity]route
	expiring []expiry // routes whose forward finished, oldest first, from head
	head     int

	forwardDone, replyDone func(*Message, error)

	forwarded, replies, failed, unroutable atomic.Uint64
}

// route is where a forwarded message came from and went.
type route struct {
	origin, worker netip.AddrPort
	until          int64 // Node.mono; zero while the forward is in flight
}

// expiry has no pointers, so the garbage collector does not scan the
// queue, which holds rate × Timeout entries.
type expiry struct {
	id    Identity
	until int64 // Node.mono
}

// RouterStats are a Router's counters.
type RouterStats struct {
	// Forwarded counts messages a worker took (released, or written for
	// an asynchronous router).
	Forwarded uint64
	// Replies counts replies their origin took.
	Replies uint64
	// Failed counts forwards and replies that failed; their senders got
	// no ACK.
	Failed uint64
	// Unroutable counts messages from workers that answered no route.
	Unroutable uint64
	// Routes is the number of origins kept for replies.
	Routes int
}

// NewRouter returns a router over workers (at least one).
func NewRouter(workers ...netip.AddrPort) (*Router, error) {
	if len(workers) == 0 {
		return nil, fmt.Errorf("%w: a router needs at least one worker", ErrValue)
	}
	r := &Router{load: make([]atomic.Int64, len(workers)), shunned: make([]atomic.Int64, len(workers)),
		routes: make(map[Identity]route)}
	for _, w := range workers {
		if !w.IsValid() || w.Port() == 0 {
			return nil, fmt.Errorf("%w: worker address %v", ErrValue, w)
		}
		r.workers = append(r.workers, addrKey(w))
	}
	r.forwardDone, r.replyDone = r.forwarded1, r.replied
	return r, nil
}

// Workers lists the router's workers.
func (r *Router) Workers() []netip.AddrPort { return append([]netip.AddrPort(nil), r.workers...) }

// Stats returns a snapshot of the router's counters.
func (r *Router) Stats() RouterStats {
	r.mu.Lock()
	routes := len(r.routes)
	r.mu.Unlock()
	return RouterStats{Forwarded: r.forwarded.Load(), Replies: r.replies.Load(), Failed: r.failed.Load(),
		Unroutable: r.unroutable.Load(), Routes: routes}
}

// ServeChirp forwards m to a worker, or routes it back to its origin if
// it is a worker's reply.
func (r *Router) ServeChirp(m *Message) {
	from := addrKey(m.Addr)
	now := m.node.mono()
	if r.worker(from) >= 0 {
		r.mu.Lock()
		rt, ok := r.routes[m.Identity]
		ok = ok && rt.worker == from
		if ok {
			delete(r.routes, m.Identity)
		}
		r.expire(now)
		r.mu.Unlock()
		if !ok {
			r.unroutable.Add(1)
			r.refuse(m, r.onLoop(m))
			return
		}
		m.Addr = rt.origin
		r.send(m, r.replyDone, -1)
		return
	}
	w := r.pick(now)
	r.mu.Lock()
	r.routes[m.Identity] = route{origin: from, worker: r.workers[w]}
	r.expire(now)
	r.mu.Unlock()
	r.load[w].Add(1)
	m.Addr = r.workers[w]
	r.send(m, r.forwardDone, w)
}

// pick returns the index of the least-loaded worker that is not shunned
// (of all, if all are), starting the search one further each time so that
// ties go round robin.
func (r *Router) pick(now int64) int {
	start := int(r.turn.Add(1)) % len(r.workers)
	best, bestLoad, bestOK := -1, int64(0), false
	for i := range r.workers {
		j := (start + i) % len(r.workers)
		ok := r.shunned[j].Load() <= now
		l := r.load[j].Load()
		if best < 0 || ok && !bestOK || ok == bestOK && l < bestLoad {
			best, bestLoad, bestOK = j, l, ok
		}
	}
	return best
}

// worker is the index of the worker at a, -1 if a is none.
func (r *Router) worker(a netip.AddrPort) int {
	for i, w := range r.workers {
		if w == a {
			return i
		}
	}
	return -1
}

func (r *Router) onLoop(m *Message) bool { return m.node.s.Receive == ReceiveInline }

// send forwards m (already addressed) without blocking; w is the index of
// the worker it goes to, -1 for a reply.
func (r *Router) send(m *Message, done func(*Message, error), w int) {
	onLoop := r.onLoop(m)
	var err error
	if onLoop {
		err = m.node.SendOnLoop(m, done)
	} else {
		err = m.node.SendAsync(m, done)
	}
	if err != nil { // refused at once (queue full, shutdown): done was not called
		if w >= 0 {
			r.load[w].Add(-1)
			r.mu.Lock()
			delete(r.routes, m.Identity)
			r.mu.Unlock()
		}
		r.fail(m, onLoop)
	}
}

// forwarded1 is the completion of a forward to a worker (loop).
func (r *Router) forwarded1(m *Message, err error) {
	w := r.worker(m.Addr)
	if w >= 0 {
		r.load[w].Add(-1)
	}
	if err != nil {
		if w >= 0 {
			r.shunned[w].Store(m.node.mono() + int64(m.node.s.timeout))
		}
		r.mu.Lock()
		if rt, ok := r.routes[m.Identity]; ok && rt.worker == m.Addr && rt.until == 0 {
			delete(r.routes, m.Identity)
		}
		r.mu.Unlock()
		r.fail(m, true)
		return
	}
	r.forwarded.Add(1)
	now := m.node.mono()
	if w >= 0 && r.shunned[w].Load() != 0 {
		r.shunned[w].Store(0) // it answers again
	}
	until := now + int64(m.node.s.timeout)
	r.mu.Lock()
	if rt, ok := r.routes[m.Identity]; ok && rt.worker == m.Addr && rt.until == 0 {
		rt.until = until
		r.routes[m.Identity] = rt
		r.expiring = append(r.expiring, expiry{m.Identity, until})
	}
	r.expire(now)
	r.mu.Unlock()
	r.accept(m)
}

// replied is the completion of a reply sent back to its origin (loop).
func (r *Router) replied(m *Message, err error) {
	if err != nil {
		r.fail(m, true)
		return
	}
	r.replies.Add(1)
	r.accept(m)
}

// accept releases m, with its ACK, after it went on (loop). With automatic
// release the node does that once the send finished.
func (r *Router) accept(m *Message) {
	if m.node.s.ManualRelease {
		_ = m.ReleaseOnLoop()
	}
}

func (r *Router) fail(m *Message, onLoop bool) {
	r.failed.Add(1)
	r.refuse(m, onLoop)
}

// refuse frees m's slot without the ACK its sender may wait for: the
// router took it but could not pass it on, so a synchronous sender must
// not succeed. With automatic release the node frees the slot itself,
// after the handler returned and the send finished; either way that
// release happens after this, on the loop, and sends no ACK.
func (r *Router) refuse(m *Message, onLoop bool) {
	m.ackWanted = false
	if !m.node.s.ManualRelease {
		return
	}
	if onLoop {
		_ = m.ReleaseOnLoop()
	} else {
		_ = m.Release()
	}
}

// expire forgets the routes whose reply window ended (r.mu held).
func (r *Router) expire(now int64) {
	for r.head < len(r.expiring) {
		e := r.expiring[r.head]
		if e.until > now {
			break
		}
		r.head++
		if rt, ok := r.routes[e.id]; ok && rt.until == e.until {
			delete(r.routes, e.id)
		}
	}
	// Reuse the storage: shift the live part down once the dead part is
	// the larger half.
	if r.head > 0 && r.head >= len(r.expiring)/2 {
		r.expiring = r.expiring[:copy(r.expiring, r.expiring[r.head:])]
		r.head = 0
	}
}
