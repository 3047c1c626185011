package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/reactor"
	"github.com/gochirp/chirp/tlsconn"
)

// Node is a running chirp node: it listens on one port, opens, reuses and
// closes connections to remotes by itself, sends messages and hands
// received ones to the Handler. Create it with Start; all methods are safe
// for concurrent use.
type Node struct {
	s        settings
	r        *reactor.Reactor
	identity codec.Identity
	port     int
	pubPort  uint16
	log      *slog.Logger
	work     *workQueue
	in       inbox

	tlsServer, tlsClient *tls.Config
	recvQ                *msgQueue
	waiters              waiters

	closed  atomic.Bool
	pending atomic.Int64 // messages accepted by Send and not finished
	stats   counters
	// space wakes a send waiting for room under Config.MaxPending
	space        chan struct{}
	spaceWaiters atomic.Int32

	failure  atomic.Pointer[error] // why the loop ended on its own
	watched  chan struct{}         // watchLoop returned
	done     chan struct{}         // closed by end
	endErr   error                 // read after done
	doneOnce sync.Once

	// loop-owned
	remotes map[netip.AddrPort]*remote
	conns   map[*conn]struct{}
	old     map[*conn]struct{} // replaced connections, closed when idle
	closing bool
	ready   bool // Start finished; connections accepted before are refused
	gcTimer *reactor.Timer
	rng     *mrand.Rand
	hdrs    []byte   // frame headers of one write
	bufs    [][]byte // slices of one write
	batch   []*Message
	// process runs one remote at a time; requests made meanwhile wait here
	processing bool
	flushing   bool // flushDirty runs
	handedOut  bool // messages went to handler workers since the last handOver
	readied    bool // and to Request callers or Recv
	dirty      []*remote
}

// Start validates cfg, listens, and returns the running node. Errors wrap
// ErrValue (bad config) or ErrAddrInUse.
func Start(cfg Config) (*Node, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	n := &Node{
		s:       s,
		log:     cfg.Logger,
		remotes: make(map[netip.AddrPort]*remote),
		conns:   make(map[*conn]struct{}),
		old:     make(map[*conn]struct{}),
		recvQ:   newMsgQueue(),
		space:   make(chan struct{}, 1),
		watched: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.identity = cfg.Identity
	if n.identity.IsZero() {
		_, _ = rand.Read(n.identity[:])
	}
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	n.rng = mrand.New(mrand.NewChaCha8(seed))
	n.initInbox()
	rc := reactor.Config{Port: s.port, Backlog: s.backlog, Handler: &loopHandler{n}, Logger: cfg.Logger, BindDials: true,
		BusyPoll: cfg.BusyPoll}
	if !cfg.DisableV4 {
		rc.ListenV4 = "0.0.0.0"
		if cfg.BindV4.IsValid() {
			rc.ListenV4 = cfg.BindV4.String()
		}
	}
	if !cfg.DisableV6 {
		rc.ListenV6 = "::"
		if cfg.BindV6.IsValid() {
			rc.ListenV6 = cfg.BindV6.String()
		}
	}
	if !cfg.DisableEncryption && cfg.CertChainPEM != "" {
		creds, err := tlsconn.Load(cfg.CertChainPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: Config.CertChainPEM: %w", ErrTLS, err)
		}
		n.tlsServer, n.tlsClient = creds.ServerConfig(), creds.ClientConfig()
	}
	n.work = newWorkQueue(n, s.workers)
	r, err := reactor.Start(rc)
	if err != nil {
		n.work.stop()
		if errors.Is(err, reactor.ErrAddrInUse) {
			return nil, fmt.Errorf("%w: port %d: %w", ErrAddrInUse, s.port, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrValue, err)
	}
	n.r = r
	n.port = r.Port()
	n.pubPort = uint16(n.port)
	if cfg.PublicPort != 0 {
		n.pubPort = uint16(cfg.PublicPort)
	}
	// Fields above were written outside the loop; this closure orders them
	// before everything the loop does with them.
	ready := make(chan struct{})
	if err := r.Submit(func() { n.ready = true; n.scheduleGC(); close(ready) }); err != nil {
		n.work.stop()
		return nil, fmt.Errorf("%w: %w", ErrShutdown, err)
	}
	<-ready
	go n.watchLoop()
	return n, nil
}

// watchLoop notices at once when the event loop ends without Close (gnet
// failed, or the reactor was aborted): the node shuts down with the cause.
func (n *Node) watchLoop() {
	defer close(n.watched)
	<-n.r.Done()
	rerr := n.r.Err()
	if rerr == reactor.ErrClosed {
		return // Close
	}
	err := fmt.Errorf("%w: %w", ErrShutdown, rerr)
	n.failure.Store(&err)
	n.log.Error("chirp: event loop ended, node shut down", "err", rerr)
	// The loop goroutine is gone and the reactor has run all it had
	// queued: the node's loop-owned state has no other user now, so this
	// goroutine takes the loop's place to fail what is pending.
	n.shutdownWith(err)
	n.closeInbox(err)
	n.recvQ.close()
	n.end(err)
}

// end closes Done with err as the reason.
func (n *Node) end(err error) {
	n.doneOnce.Do(func() {
		n.endErr = err
		close(n.done)
	})
}

// Done is closed when the node stopped: when Close finished, or as soon as
// its event loop ended on its own (then every pending and later send fails
// with ErrShutdown naming the cause, which Err returns).
func (n *Node) Done() <-chan struct{} { return n.done }

// Err is nil until Done is closed. Then it wraps ErrShutdown: after Close
// with no more detail, after a failure with its cause.
func (n *Node) Err() error {
	select {
	case <-n.done:
		return n.endErr
	default:
		return nil
	}
}

// Identity is the node's identity, sent in every handshake.
func (n *Node) Identity() Identity { return n.identity }

// Port is the port the node listens on.
func (n *Node) Port() int { return n.port }

// Synchronous reports the node's mode.
func (n *Node) Synchronous() bool { return !n.s.Asynchronous }

// SendAsync starts sending m to m.Addr and returns at once. done runs on
// the node's event loop when the send finished (it must not block, and it
// may call SendOnLoop and ReleaseOnLoop): with
// nil when the remote released the message (synchronous node) or the
// message was written to the kernel (asynchronous node), else with an
// error wrapping ErrTimeout, ErrCannotConnect, ErrConnLost, ErrProtocol,
// ErrShutdown, ErrTLS or ErrTooLarge. m must not be changed until then.
// SendAsync returns ErrInUse if m is still being sent, ErrShutdown after
// Close, and ErrQueueFull when Config.MaxPending sends are pending.
func (n *Node) SendAsync(m *Message, done func(*Message, error)) error {
	return n.submit(nil, m, done, nil)
}

// submit hands m to the loop, to send it and call done, or put the result
// on wait (Send's channel). With ctx nil it fails at the MaxPending bound,
// else it waits for room until ctx ends.
func (n *Node) submit(ctx context.Context, m *Message, done func(*Message, error), wait chan error) error {
	if err := sendable(m); err != nil {
		return err
	}
	if !m.inFlight.CompareAndSwap(false, true) {
		return fmt.Errorf("send %s: %w", m.Identity, ErrInUse)
	}
	if n.closed.Load() {
		m.inFlight.Store(false)
		return fmt.Errorf("send to %s: %w", m.Addr, ErrShutdown)
	}
	if p := n.failure.Load(); p != nil {
		m.inFlight.Store(false)
		return fmt.Errorf("send to %s: %w", m.Addr, *p)
	}
	if err := n.admit(ctx); err != nil {
		m.inFlight.Store(false)
		return err
	}
	// Set only now that m is ours: a send still in flight reads them.
	m.done, m.waitCh = done, wait
	n.post(inboxOp{m: m})
	return nil
}

// sendable checks what the wire format can carry: a header of at most
// 65535 bytes and data below 4 GiB.
func sendable(m *Message) error {
	switch {
	case len(m.Header) > math.MaxUint16:
		return fmt.Errorf("%w: send %s: header of %d bytes, the limit is %d", ErrValue, m.Identity, len(m.Header), math.MaxUint16)
	case uint64(len(m.Data)) > math.MaxUint32:
		return fmt.Errorf("%w: send %s: data of %d bytes, the limit is %d", ErrValue, m.Identity, len(m.Data), uint64(math.MaxUint32))
	}
	return nil
}

// errChans are reusable result channels of Send: room for the result and
// the answer to a withdrawal.
var errChans = sync.Pool{New: func() any { return make(chan error, 2) }}

// SendOnLoop is SendAsync for code that already runs on the node's event
// loop: ReceiveInline handlers and send completion callbacks. It skips the
// hand-off to the loop (libchirp's ch_chirp_send, where SendAsync is
// ch_chirp_send_ts). Calling it from any other goroutine corrupts the node.
// At Config.MaxPending pending sends it fails with ErrQueueFull: the loop
// cannot wait.
func (n *Node) SendOnLoop(m *Message, done func(*Message, error)) error {
	if err := sendable(m); err != nil {
		return err
	}
	if !m.inFlight.CompareAndSwap(false, true) {
		return fmt.Errorf("send %s: %w", m.Identity, ErrInUse)
	}
	if n.closing {
		m.inFlight.Store(false)
		return fmt.Errorf("send to %s: %w", m.Addr, ErrShutdown)
	}
	if !n.tryAdmit() {
		m.inFlight.Store(false)
		return ErrQueueFull
	}
	m.done = done
	n.enqueue(m)
	return nil
}

// Send sends m to m.Addr and waits until the send finished (see
// SendAsync) or ctx ended. When Config.MaxPending sends are pending, Send
// first waits for room.
//
// When ctx ends first, a send none of which was written yet (queued, or
// waiting for a connection) is withdrawn: Send returns ctx's error and m
// may be sent again at once. A send already written goes on: Send returns
// ctx's error, and m stays in use (ErrInUse) until the send finished,
// within the node's Timeout. So ctx's deadline is the deadline of the
// message: by then it is out, or it was never sent.
func (n *Node) Send(ctx context.Context, m *Message) error {
	if err := ctx.Err(); err != nil {
		return err // ended already: nothing to send
	}
	ch := errChans.Get().(chan error)
	if err := n.submit(ctx, m, nil, ch); err != nil {
		errChans.Put(ch)
		return err
	}
	select {
	case err := <-ch:
		errChans.Put(ch)
		return err
	case <-ctx.Done():
	}
	n.post(inboxOp{m: m, withdraw: ch})
	err, reuse := waitWithdrawn(ctx, ch)
	if reuse {
		errChans.Put(ch)
	}
	return err
}

// Close shuts the node down. It stops accepting sends, lets messages in
// flight finish until ctx ends, then fails the rest with ErrShutdown,
// closes every connection and waits for the node's goroutines. When it
// failed sends, its error wraps ErrShutdown and ctx's cause and says how
// many. Messages held by the application need no release afterwards.
// Close must not be called from the loop (inline handlers, completion
// callbacks): it waits for the loop.
func (n *Node) Close(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) {
		return ErrShutdown
	}
	if n.spaceWaiters.Load() > 0 {
		n.wakeWaiter() // sends waiting for room fail with ErrShutdown
	}
	tick := time.NewTicker(2 * time.Millisecond)
	for n.pending.Load() > 0 {
		select {
		case <-ctx.Done():
		case <-n.done: // the loop failed: nothing will finish any more
		case <-tick.C:
			continue
		}
		break
	}
	tick.Stop()
	before := n.stats.shutdowns.Load()
	done := make(chan struct{})
	if n.r.Submit(func() { n.shutdown(); close(done) }) == nil {
		<-done
	}
	err := n.r.Close()
	<-n.watched
	n.closeInbox(fmt.Errorf("%w: node closed", ErrShutdown))
	n.work.stop()
	n.recvQ.close()
	n.end(ErrShutdown)
	if errors.Is(err, reactor.ErrClosed) {
		err = nil
	}
	if failed := n.stats.shutdowns.Load() - before; failed > 0 {
		plural := "s"
		if failed == 1 {
			plural = ""
		}
		ferr := fmt.Errorf("%w: failed %d pending send%s", ErrShutdown, failed, plural)
		if cause := context.Cause(ctx); cause != nil {
			ferr = fmt.Errorf("%w: %w", ferr, cause)
		}
		err = errors.Join(ferr, err)
	}
	return err
}

// shutdown fails everything still queued and closes all connections.
func (n *Node) shutdown() { n.shutdownWith(fmt.Errorf("%w: node closing", ErrShutdown)) }

func (n *Node) shutdownWith(err error) {
	n.closing = true
	n.gcTimer.Stop()
	for _, rem := range n.remotes {
		n.dropRemote(rem, err)
	}
	for c := range n.conns {
		n.closeConn(c, err)
	}
}

// epoch is the base of the nodes' clock: one for the process, so that
// times of different nodes compare (a Router may serve several).
var epoch = time.Now()

// now is the node's clock, read for every message received and sent.
// time.Now reads the wall clock and the monotonic clock (two vDSO calls);
// now reads only the monotonic one and adds it to epoch. The times are for
// durations and order within this process, which Sub and After take from
// the monotonic reading, as they do for time.Now's.
func (n *Node) now() time.Time { return epoch.Add(time.Since(epoch)) }

// mono is the nodes' clock as nanoseconds since epoch, for state that
// keeps many times and should hold no pointers (the router's routes).
func (n *Node) mono() int64 { return int64(time.Since(epoch)) }

// loopHandler receives the reactor's events.
type loopHandler struct{ n *Node }

func (h *loopHandler) OnOpen(rc *reactor.Conn) { h.n.accepted(rc) }
func (h *loopHandler) OnData(rc *reactor.Conn, b []byte) int {
	return h.n.read(rc.Context().(*conn), b)
}
func (h *loopHandler) OnClose(rc *reactor.Conn, err error) {
	if c, ok := rc.Context().(*conn); ok {
		h.n.connClosed(c, err)
	}
}
func (h *loopHandler) OnDrain(rc *reactor.Conn) { h.n.drained(rc.Context().(*conn)) }

// Stats are counters a user can export.
type Stats struct {
	MessagesIn, MessagesOut uint64
	BytesIn, BytesOut       uint64 // header+data bytes of user messages
	AcksIn, AcksOut         uint64
	SendErrors              uint64 // sends that finished with an error, of which:
	Timeouts                uint64 // ErrTimeout
	CannotConnect           uint64 // ErrCannotConnect
	TLSErrors               uint64 // ErrTLS
	Shutdowns               uint64 // ErrShutdown
	ProtocolErrors          uint64 // connections closed for a protocol violation
	Connections             int    // open connections
	Remotes                 int
	SlotsInUse              int // received messages not yet released
	PausedConnections       int
	Pauses                  uint64 // times a connection was paused for lack of slots
	HandlerPanics           uint64 // panics of Config.Handler, recovered
	// Failure is why the node's event loop ended on its own (wrapping
	// ErrShutdown), nil while it runs or after a plain Close; see Done.
	Failure error
}

type counters struct {
	msgIn, msgOut, bytesIn, bytesOut, acksIn, acksOut atomic.Uint64
	sendErr, timeouts, protoErr, pauses               atomic.Uint64
	cannotConnect, tlsErr, shutdowns                  atomic.Uint64
	panics                                            atomic.Uint64
	slotsInUse, paused, remotes                       atomic.Int64
}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	c := &n.stats
	s := Stats{
		MessagesIn: c.msgIn.Load(), MessagesOut: c.msgOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		AcksIn: c.acksIn.Load(), AcksOut: c.acksOut.Load(),
		SendErrors: c.sendErr.Load(), Timeouts: c.timeouts.Load(),
		CannotConnect: c.cannotConnect.Load(), TLSErrors: c.tlsErr.Load(), Shutdowns: c.shutdowns.Load(),
		ProtocolErrors: c.protoErr.Load(), Pauses: c.pauses.Load(),
		SlotsInUse: int(c.slotsInUse.Load()), PausedConnections: int(c.paused.Load()),
		Remotes: int(c.remotes.Load()), HandlerPanics: c.panics.Load(),
	}
	if n.r != nil {
		s.Connections = n.r.Conns()
	}
	if p := n.failure.Load(); p != nil {
		s.Failure = *p
	}
	return s
}
