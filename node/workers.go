package node

import (
	"runtime/debug"
	"sync"
)

// Handler processes received messages. ServeChirp runs on one of the
// node's worker goroutines. Unless Config.ManualRelease is set, the node
// releases the message when ServeChirp returns (if it is still held), and
// reuses it afterwards unless ServeChirp released it itself: ServeChirp
// must not keep m (see the package guide, Slots and release).
//
// A panic in ServeChirp is recovered, as net/http does: it is logged with
// its stack at Error level and counted in Stats.HandlerPanics, the message
// is released (with ManualRelease too: the handler that held it is gone),
// and the node goes on.
type Handler interface {
	ServeChirp(m *Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(m *Message)

// ServeChirp calls f(m).
func (f HandlerFunc) ServeChirp(m *Message) { f(m) }

// workQueue hands received messages from the loop to worker goroutines.
// The loop never blocks on it: the queue is bounded by the slots of all
// connections, since every queued message holds one.
type workQueue struct {
	n       *Node
	mu      sync.Mutex
	cond    *sync.Cond
	q       deque[*Message]
	stopped bool
	wg      sync.WaitGroup
}

func newWorkQueue(n *Node, workers int) *workQueue {
	w := &workQueue{n: n}
	w.cond = sync.NewCond(&w.mu)
	if n.s.Handler == nil || n.s.Receive != ReceiveWorkers {
		return w
	}
	for i := 0; i < workers; i++ {
		w.wg.Add(1)
		go w.run()
	}
	return w
}

// push is called on the loop (the node has a Handler).
func (w *workQueue) push(m *Message) {
	w.mu.Lock()
	w.q.push(m)
	w.mu.Unlock()
	w.cond.Signal()
}

// waiting reports whether messages wait for a worker to take them.
func (w *workQueue) waiting() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.q.len() > 0
}

func (w *workQueue) run() {
	defer w.wg.Done()
	h := w.n.s.Handler
	for {
		w.mu.Lock()
		for w.q.len() == 0 && !w.stopped {
			w.cond.Wait()
		}
		if w.stopped {
			w.mu.Unlock()
			return
		}
		m := w.q.pop()
		w.mu.Unlock()
		if !w.n.serve(h, m, false) && !w.n.s.ManualRelease {
			m.autoRelease()
		}
		if !w.n.s.ManualRelease {
			m.unref() // the handler's reference: m may be reused now
		}
	}
}

func (w *workQueue) stop() {
	w.mu.Lock()
	w.stopped = true
	w.q = deque[*Message]{}
	w.mu.Unlock()
	w.cond.Broadcast()
	w.wg.Wait()
}

// serve runs h on m and recovers a panic of h (see Handler): it logs it with
// the stack, counts it and releases m (on the loop when onLoop). It reports
// whether h panicked.
func (n *Node) serve(h Handler, m *Message, onLoop bool) (panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			n.stats.panics.Add(1)
			n.log.Error("chirp: handler panicked", "msg", m.String(), "panic", p, "stack", string(debug.Stack()))
			if !m.held.CompareAndSwap(true, false) {
				return
			}
			if onLoop {
				n.release(m)
			} else {
				n.post(inboxOp{m: m, release: true})
			}
		}
	}()
	h.ServeChirp(m)
	return false
}
