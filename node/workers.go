package node

import "sync"

// Handler processes received messages. ServeChirp runs on one of the
// node's worker goroutines. Unless Config.ManualRelease is set, the node
// releases the message when ServeChirp returns (if it is still held).
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

// push is called on the loop.
func (w *workQueue) push(m *Message) {
	if w.n.s.Handler == nil {
		m.held.Store(false)
		w.n.release(m)
		return
	}
	w.mu.Lock()
	w.q.push(m)
	w.mu.Unlock()
	w.cond.Signal()
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
		h.ServeChirp(m)
		if !w.n.s.ManualRelease {
			_ = m.Release()
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
