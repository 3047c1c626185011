// Package reactor is the event loop every chirp node runs on: one gnet v2
// event loop that serves accepted and dialed connections, runs closures
// submitted from any goroutine, keeps timers, and can stop reading a
// connection.
//
// It knows sockets and nothing of chirp. All connection state is owned by the
// loop goroutine: Handler callbacks, timer functions and submitted closures
// run there, one at a time, so they need no locks. Only Submit, Dial, Abort,
// Close, Done and Err may be called from other goroutines.
//
// # Differences from plain gnet
//
// The reactor owns its listeners. gnet's acceptor ends the whole engine on
// the first accept error it does not expect, EMFILE included, so one burst
// of connections at the descriptor limit would drop every connection. The
// reactor accepts in a goroutine per listener instead, survives accept
// errors as net/http does (a rate-limited Warn, back-off from 5 ms doubling
// to 1 s, the loop serving on meanwhile) and enrolls accepted sockets into
// the loop, as dialed ones.
//
// If the loop ends without Close (a gnet failure, or Abort), the reactor
// knows at once: the goroutine that ran gnet takes over the loop's state,
// fails pending dials, closes every connection, and closes Done; Err names
// the cause, and Submit and Dial fail with ErrClosed from then on.
//
// Writes do not go through gnet's outbound buffer. They are writev(2) calls
// on the socket from the loop, and a remainder the kernel does not take is
// kept by the connection and flushed when a small write poller (one epoll
// instance and one goroutine per reactor, used only while some connection's
// kernel send buffer is full) reports the socket writable. gnet's outbound
// buffer thus stays empty, which is what makes a lossless read pause
// possible.
//
// gnet has no way to stop reading a connection. A pause starts soft: bytes
// that still arrive are kept, not delivered. Once the peer sent 64 KiB more,
// PauseRead's socket is detached from gnet: gnet closes its descriptor, and
// the reactor keeps the socket open with a duplicate it makes just before,
// so the kernel stops reading, its receive window fills and TCP stops the
// sender. ResumeRead delivers what was kept and, if detached, enrolls the
// socket back into the same loop, then drops its duplicate. So a connection
// holds one descriptor, gnet's or, while detached, the reactor's; only a
// detach or resume in progress holds two for a moment. (A duplicate per
// connection for its whole life used to halve how many peers a process
// could hold under its descriptor limit.) While paused, the process holds
// at most 64 KiB plus one read (256 KiB) per connection. A soft pause costs
// nothing; a detach/re-enroll cycle costs a few system calls (dup, close,
// epoll registration) and one short trip through gnet's worker pool, tens
// of microseconds. A peer that dies while a connection is detached is
// noticed on the next write or on resume.
package reactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"golang.org/x/sys/unix"
)

// Errors reported by the reactor. Returned errors wrap them with context.
var (
	// ErrClosed: the reactor is closed or closing; the operation was not done.
	ErrClosed = errors.New("reactor closed")
	// ErrConnClosed: the connection is closed.
	ErrConnClosed = errors.New("connection closed")
	// ErrAddrInUse: a listen address is already in use.
	ErrAddrInUse = errors.New("address in use")
	// ErrRefused: the dialed peer refused the connection.
	ErrRefused = errors.New("connection refused")
	// ErrTimeout: a dial did not complete within its timeout.
	ErrTimeout = errors.New("timeout")
	// ErrPeerClosed: the peer closed or reset the connection.
	ErrPeerClosed = errors.New("peer closed the connection")
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("invalid reactor config")
)

// Handler receives connection events. All methods run on the loop.
type Handler interface {
	// OnOpen is called for each accepted connection. Dialed connections are
	// reported to the Dial callback instead.
	OnOpen(c *Conn)
	// OnData is called with bytes that arrived (including bytes left over
	// from earlier calls). It returns how many it consumed; the rest is
	// offered again, in front of the next bytes. data is valid only during
	// the call.
	OnData(c *Conn, data []byte) (consumed int)
	// OnClose is called exactly once per connection, accepted or dialed,
	// when it closed: err is the cause (ErrPeerClosed, a socket error, the
	// error given to Conn.Close, or ErrClosed when the reactor shut down).
	OnClose(c *Conn, err error)
}

// Drainer is an optional Handler extension: OnDrain is called on the loop
// when a connection whose writes had to be buffered has written everything
// to the kernel.
type Drainer interface {
	OnDrain(c *Conn)
}

// Config configures a Reactor.
type Config struct {
	// ListenV4 and ListenV6 are the IP addresses to listen on ("0.0.0.0",
	// "::", "127.0.0.1", ...). An empty string disables that family; at
	// least one must be set.
	ListenV4, ListenV6 string
	// Port to listen on; 0 picks a free one (the same for both families),
	// reported by Reactor.Port.
	Port int
	// Backlog is the listen backlog; 0 means 100.
	Backlog int
	// KeepAlive is the TCP keepalive idle time; 0 means 60 s, negative
	// disables it.
	KeepAlive time.Duration
	// Handler receives connection events. Required.
	Handler Handler
	// BindDials makes dialed connections use the listen address of their
	// family as source address, when it is a specific one (not 0.0.0.0 or
	// ::): a multi-homed node then speaks from the address it listens on.
	BindDials bool
	// Logger for rare events (nil: discard).
	Logger *slog.Logger
	// BusyPoll is how long the loop goes on polling without blocking once
	// it found no events, before it blocks in epoll_wait (0: at once). It
	// saves the sleeping thread's wake-up when I/O comes within it, for up
	// to BusyPoll of CPU per idle spell.
	BusyPoll time.Duration
}

// Reactor is one running event loop. Create it with Start.
type Reactor struct {
	cfg     Config
	handler Handler
	drainer Drainer
	log     *slog.Logger
	port    int

	eng      gnet.Engine
	el       gnet.EventLoop
	wakeTx   *net.UDPConn
	wakeTo   netip.AddrPort
	lns      []*net.TCPListener
	acceptWG sync.WaitGroup
	stopped  chan struct{} // gnet's engine returned
	runErr   error         // what it returned; read after stopped
	done     chan struct{} // end finished
	err      error         // why the reactor ended; read after done
	ticked   chan struct{}
	booted   chan gnet.Engine
	tickOne  sync.Once

	abortCause atomic.Pointer[error]  // set by Abort
	wakes      atomic.Int64           // wake-up datagrams Submit sent (for tests)
	gnetErr    atomic.Pointer[string] // the last error gnet logged

	// submission queue, guarded by mu
	mu            sync.Mutex
	queue         []func()
	scheduled     bool
	closed        bool // Submit refuses
	closeCalled   bool
	yielding      bool     // the loop yields and runs the queue afterwards (beforeBlock): no wake-up needed
	queuedInYield bool     // loop-owned: closures were queued while the loop yielded, without a wake-up
	spare         []func() // loop only

	ctx    context.Context // cancelled by Close: aborts dials
	cancel context.CancelFunc
	dialWG sync.WaitGroup

	// loop-owned state
	runnable [1]metrics.Sample // runnable goroutines (beforeBlock)
	conns    map[int]*Conn     // by our descriptor
	dials    map[*Conn]struct{}
	cur      *Conn // connection whose gnet callback is running
	timers   timerHeap
	iov      []unix.Iovec
	wp       *writePoller
	wakeT    *time.Timer
	wakeAt   int64 // monotonic ns of the armed wake timer, 0 when none
	closing  bool
	endErr   error // why closing: ErrClosed, or the loop's failure
	detaches int   // read pauses that detached a socket (tests)
	base     time.Time
	drainRun gnet.Runnable

	nOpen atomic.Int64
	ready atomic.Bool // the loop handle is set; orders it before loop reads
}

// Start binds the listeners and runs the loop. It returns when the loop is
// ready to accept connections and run closures.
func Start(cfg Config) (*Reactor, error) {
	if cfg.Handler == nil {
		return nil, fmt.Errorf("%w: Handler is nil", ErrConfig)
	}
	if cfg.ListenV4 == "" && cfg.ListenV6 == "" {
		return nil, fmt.Errorf("%w: neither ListenV4 nor ListenV6 is set", ErrConfig)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("%w: Port %d is outside 0..65535", ErrConfig, cfg.Port)
	}
	if cfg.Backlog < 0 || cfg.Backlog > 65535 {
		return nil, fmt.Errorf("%w: Backlog %d is outside 0..65535", ErrConfig, cfg.Backlog)
	}
	if cfg.BusyPoll < 0 {
		return nil, fmt.Errorf("%w: BusyPoll %v is negative", ErrConfig, cfg.BusyPoll)
	}
	if cfg.BusyPoll > 0 && !busyPollSupported() {
		return nil, fmt.Errorf("%w: BusyPoll needs the gnet patch carried in chirp's third_party/gnet (a replace in go.mod; see its CHIRP.md)", ErrConfig)
	}
	if cfg.Backlog == 0 {
		cfg.Backlog = 100
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 60 * time.Second
	}
	var v4, v6 netip.Addr
	var err error
	if cfg.ListenV4 != "" {
		if v4, err = netip.ParseAddr(cfg.ListenV4); err != nil || !v4.Is4() {
			return nil, fmt.Errorf("%w: ListenV4 %q is not an IPv4 address", ErrConfig, cfg.ListenV4)
		}
	}
	if cfg.ListenV6 != "" {
		if v6, err = netip.ParseAddr(cfg.ListenV6); err != nil || !v6.Is6() || v6.Is4In6() {
			return nil, fmt.Errorf("%w: ListenV6 %q is not an IPv6 address", ErrConfig, cfg.ListenV6)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lns, err := listen(cfg, v4, v6)
	if err != nil {
		return nil, err
	}
	r, err := start(cfg, log, lns)
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, err
	}
	return r, nil
}

func start(cfg Config, log *slog.Logger, lns []*net.TCPListener) (*Reactor, error) {
	r := &Reactor{
		cfg:     cfg,
		handler: cfg.Handler,
		log:     log,
		lns:     lns,
		port:    int(netip.MustParseAddrPort(lns[0].Addr().String()).Port()),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
		ticked:  make(chan struct{}),
		booted:  make(chan gnet.Engine, 1),
		conns:   make(map[int]*Conn),
		dials:   make(map[*Conn]struct{}),
		base:    time.Now(),
	}
	r.runnable[0].Name = "/sched/goroutines/runnable:goroutines"
	r.drainer, _ = cfg.Handler.(Drainer)
	wp, err := newWritePoller(r)
	if err != nil {
		return nil, err
	}
	r.wp = wp
	r.drainRun = gnet.RunnableFunc(func(context.Context) error { r.drain(); return nil })
	r.ctx, r.cancel = context.WithCancel(context.Background())
	opts := []gnet.Option{
		gnet.WithMulticore(false),
		gnet.WithNumEventLoop(1),
		// One read buffer per loop (not per connection): big reads mean fewer
		// syscalls for big messages (64 KiB messages: 3.5x the passes/s).
		gnet.WithReadBufferCap(readBufferCap),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		withBusyPoll(cfg.BusyPoll),
		withBeforeBlock(r.beforeBlock),
		gnet.WithLogger(&gnetLogger{r: r}),
		// Round-robin mutates shared state on every Register; ours races
		// with enrolments from other goroutines. With one loop the choice
		// is moot otherwise.
		gnet.WithLoadBalancing(gnet.LeastConnections),
	}
	// The reactor owns the TCP listeners (see acceptLoop); gnet only runs
	// the loop. gnet's Engine refuses every call (Register, Stop) without a
	// listener, so it gets a placeholder: a Unix socket in a private
	// directory, unlinked as soon as it is bound, so nothing can connect to
	// it. Rotate returns when the engine ended, for whatever reason; end
	// takes over from there.
	dir, err := os.MkdirTemp("", "chirp-reactor-")
	if err != nil {
		r.wp.close()
		return nil, fmt.Errorf("reactor: placeholder listener: %w", err)
	}
	defer os.RemoveAll(dir)
	go func() {
		err := gnet.Rotate(&engineHandler{r}, []string{"unix://" + filepath.Join(dir, "l")}, opts...)
		r.runErr = err
		close(r.stopped)
		r.end()
	}()
	var eng gnet.Engine
	select {
	case eng = <-r.booted:
		os.RemoveAll(dir)
	case <-r.done:
		return nil, fmt.Errorf("reactor: starting the event loop: %w", r.runErr)
	}
	r.eng = eng
	// The ticker goroutine starts after gnet registered its loop, so the
	// first tick orders our Register after that registration.
	select {
	case <-r.ticked:
	case <-r.done:
		return nil, fmt.Errorf("reactor: engine stopped during start: %w", r.runErr)
	}
	if err := r.fetchLoop(); err != nil {
		r.stopEngine()
		return nil, err
	}
	r.ready.Store(true)
	r.acceptWG.Add(len(lns))
	for _, ln := range lns {
		go r.acceptLoop(ln)
	}
	return r, nil
}

// fetchLoop gets a handle on gnet's single event loop by enrolling one end
// of a loopback UDP socket pair (Engine offers no other way). The pair
// doubles as the loop's wake-up: a datagram from the other end makes gnet
// call OnTraffic for it on the loop, which runs the submitted closures.
// Unlike EventLoop.Execute this allocates nothing.
func (r *Reactor) fetchLoop() error {
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("reactor: wake-up socket: %w", err)
	}
	uc, err := net.DialUDP("udp4", nil, tx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		tx.Close()
		return fmt.Errorf("reactor: wake-up socket: %w", err)
	}
	r.wakeTx = tx
	r.wakeTo = uc.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), loopHandle{}), uc)
	ch, err := r.eng.Register(ctx)
	if err != nil {
		uc.Close()
		return fmt.Errorf("reactor: loop handle: %w", err)
	}
	res := <-ch
	if res.Err != nil {
		return fmt.Errorf("reactor: loop handle: %w", res.Err)
	}
	r.mu.Lock() // Submit reads el under mu: it may run on other goroutines early
	r.el = res.Conn.EventLoop()
	r.mu.Unlock()
	return nil
}

// stopEngine stops gnet and waits until end finished.
func (r *Reactor) stopEngine() {
	r.cancel()
	// Engine.Stop polls every 500 ms; Rotate returning is the real signal.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = r.eng.Stop(ctx) }()
	<-r.done
	cancel()
}

// end runs once the engine stopped, on the goroutine that ran it. Whether
// Close stopped it or it failed, the loop goroutine is gone, so this
// goroutine owns the loop's state now: it fails pending dials, closes the
// connections gnet did not know (detached ones), runs the closures still
// queued (they see a closing reactor, as after Close) and frees the rest.
func (r *Reactor) end() {
	r.mu.Lock()
	r.closed = true
	byClose := r.closeCalled
	r.mu.Unlock()
	r.cancel()
	cause := ErrClosed
	if !byClose {
		cause = r.failure(r.runErr)
	}
	r.stopAccepting()
	r.shutdown(cause)
	for {
		r.mu.Lock()
		empty := len(r.queue) == 0
		r.mu.Unlock()
		if empty {
			break
		}
		r.drain()
	}
	r.wp.close()
	if r.wakeTx != nil {
		r.wakeTx.Close() // gnet closed its end with the loop
	}
	r.err = cause
	close(r.done)
}

// failure is the error of a loop that ended without Close; runErr is what
// gnet returned, if known yet.
func (r *Reactor) failure(runErr error) error {
	if p := r.abortCause.Load(); p != nil {
		return fmt.Errorf("%w: event loop ended: %w", ErrClosed, *p)
	}
	if s := r.gnetErr.Load(); s != nil {
		return fmt.Errorf("%w: event loop ended: %s", ErrClosed, *s)
	}
	if runErr != nil {
		return fmt.Errorf("%w: event loop ended: %w", ErrClosed, runErr)
	}
	return fmt.Errorf("%w: event loop ended without Close", ErrClosed)
}

// Done is closed when the reactor ended: after Close, or as soon as its
// event loop stopped on its own (then pending dials have failed, every
// connection got OnClose, and Submit and Dial return ErrClosed).
func (r *Reactor) Done() <-chan struct{} { return r.done }

// Err is nil until Done is closed. Then it is ErrClosed after Close, or an
// error wrapping ErrClosed that names why the loop ended.
func (r *Reactor) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Abort ends the event loop as a failure would: connections are dropped
// (OnClose with an error wrapping ErrClosed and cause), pending dials fail,
// Done is closed and Err wraps cause. It is for faults found outside the
// loop (the write poller failing) and for fault-injection tests; Close is
// still needed to free the reactor. Safe from any goroutine.
func (r *Reactor) Abort(cause error) {
	if cause == nil {
		cause = errors.New("aborted")
	}
	if !r.abortCause.CompareAndSwap(nil, &cause) {
		return
	}
	r.mu.Lock()
	el := r.el
	r.mu.Unlock()
	// A task that returns ErrEngineShutdown ends gnet's loop: it closes
	// every connection it knows and stops the engine.
	// An error from Execute means the engine is ending already.
	_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		return fmt.Errorf("%w: %w", gerrors.ErrEngineShutdown, cause)
	}))
}

type loopHandle struct{}

// Port is the bound listening port.
func (r *Reactor) Port() int { return r.port }

// Conns is the number of open connections (safe from any goroutine).
func (r *Reactor) Conns() int { return int(r.nOpen.Load()) }

// Submit runs f on the loop. Closures from one goroutine run in the order
// they were submitted; a burst of submissions costs one wake-up, and none
// while the loop yields to the goroutines it readied (beforeBlock). It returns
// ErrClosed, and does not run f, once Close has begun or the loop ended.
// A closure accepted just before the loop ended runs in end, after the
// loop, seeing a closing reactor.
func (r *Reactor) Submit(f func()) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.queue = append(r.queue, f)
	wake := !r.scheduled && !r.yielding
	r.scheduled = true
	if wake {
		r.wakes.Add(1)
	}
	el := r.el
	r.mu.Unlock()
	if wake {
		if _, err := r.wakeTx.WriteToUDPAddrPort(wakeByte[:], r.wakeTo); err != nil {
			// If this fails too, the engine is ending, and end runs f.
			_ = el.Execute(context.Background(), r.drainRun)
		}
	}
	return nil
}

var wakeByte = [1]byte{'w'}

// readBufferCap is the size of the loop's one read buffer: the most a
// single read(2) takes from a socket.
const readBufferCap = 256 << 10

// drain runs the submitted closures and reports whether there were any.
func (r *Reactor) drain() bool {
	r.mu.Lock()
	q := r.queue
	r.queue = r.spare[:0]
	r.scheduled = false
	r.mu.Unlock()
	for i, f := range q {
		q[i] = nil
		f()
	}
	r.spare = q[:0]
	return len(q) > 0
}

// Close stops listening, closes every connection (each gets OnClose with
// ErrClosed), fails pending dials with ErrClosed, cancels timers, makes
// later Submit calls fail, and returns when the loop's goroutines ended.
// Closures submitted before Close still run. Close must not be called on
// the loop. A second Close returns ErrClosed. After the loop ended on its
// own (see Done), Close only frees what is left.
func (r *Reactor) Close() error {
	r.mu.Lock()
	if r.closeCalled {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closeCalled = true
	r.mu.Unlock()
	done := make(chan struct{})
	if err := r.Submit(func() { r.shutdown(ErrClosed); close(done) }); err == nil {
		select {
		case <-done:
		case <-r.done: // the loop died meanwhile; end ran the closure
		}
	}
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.stopAccepting()
	r.dialWG.Wait()
	r.stopEngine()
	return nil
}

// shutdown fails pending dials and closes every connection with err, and
// drops the timers. It runs on the loop, or in end once the loop is gone.
func (r *Reactor) shutdown(err error) {
	r.closing = true
	r.endErr = err
	for c := range r.dials {
		delete(r.dials, c)
		c.state = stateClosed
		c.dialDone(nil, err)
	}
	for _, c := range r.conns {
		c.closeNow(err, false, false)
	}
	for len(r.timers) > 0 {
		t := r.timers[0]
		r.timers.remove(t)
	}
	if r.wakeT != nil {
		r.wakeT.Stop()
	}
}

// now is the loop's monotonic clock in nanoseconds.
func (r *Reactor) now() int64 { return int64(time.Since(r.base)) }

// Dial opens a TCP connection to addr into this loop. done runs on the loop
// with the connection, or with an error: ErrRefused, ErrTimeout (nothing
// within timeout, which covers the TCP handshake only), ErrClosed, or
// another dial error. Safe from any goroutine; ctx is stored as the new
// connection's context before done runs.
func (r *Reactor) Dial(addr netip.AddrPort, timeout time.Duration, ctx any, done func(*Conn, error)) error {
	c := &Conn{r: r, outbound: true, state: stateDialing, dialDone: done, ctx: ctx, remote: addr}
	// The registration must run before gnet's OnOpen for the socket, or
	// OnOpen takes the connection for a failed dial. It goes through Submit
	// and the enrolment through gnet's task queue, which are not ordered
	// with each other, so the dial goroutine waits for it before Enroll.
	registered := make(chan struct{})
	register := func() {
		close(registered)
		if r.closing {
			c.state = stateClosed
			done(nil, r.endErr)
			return
		}
		r.dials[c] = struct{}{}
	}
	if err := r.Submit(register); err != nil {
		return err
	}
	r.dialWG.Add(1)
	go func() {
		defer r.dialWG.Done()
		d := net.Dialer{Timeout: timeout, KeepAlive: -1, LocalAddr: r.dialSource(addr.Addr())}
		if r.cfg.KeepAlive > 0 {
			d.KeepAlive = r.cfg.KeepAlive
		}
		nc, err := d.DialContext(r.ctx, "tcp", addr.String())
		if err != nil {
			err = classifyDial(timeout, err, r.ctx)
			if r.Submit(func() { r.dialFailed(c, err) }) != nil {
				return
			}
			return
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		select {
		case <-registered:
		case <-r.ctx.Done():
			// Closing: the registration runs on the loop or in end, and
			// fails the dial there.
			nc.Close()
			return
		}
		ch, err := r.el.Enroll(gnet.NewContext(context.Background(), c), nc)
		if err != nil {
			nc.Close()
			_ = r.Submit(func() { r.dialFailed(c, fmt.Errorf("%w: %w", ErrClosed, err)) })
			return
		}
		select {
		case res := <-ch:
			if res.Err != nil {
				_ = r.Submit(func() { r.dialFailed(c, fmt.Errorf("registering the connection: %w", res.Err)) })
			}
		case <-r.stopped: // the loop is gone; end fails the dial
		}
	}()
	return nil
}

// dialSource is the local address for a dial to dst (nil: the kernel's
// choice).
func (r *Reactor) dialSource(dst netip.Addr) net.Addr {
	if !r.cfg.BindDials {
		return nil
	}
	src := r.cfg.ListenV6
	if dst.Unmap().Is4() {
		src = r.cfg.ListenV4
	}
	a, err := netip.ParseAddr(src)
	if err != nil || a.IsUnspecified() {
		return nil
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
}

func (r *Reactor) dialFailed(c *Conn, err error) {
	if _, ok := r.dials[c]; !ok {
		return // already failed by shutdown
	}
	delete(r.dials, c)
	c.state = stateClosed
	c.dialDone(nil, err)
}

// classifyDial turns a failed dial into an error of one of the reactor's
// kinds whose text is only what happened ("connection refused"): the caller
// of Dial named the address and names it in its own error, and the
// *net.OpError, which names it as well, stays reachable with errors.As.
func classifyDial(timeout time.Duration, err error, ctx context.Context) error {
	switch {
	case ctx.Err() != nil:
		return ErrClosed
	case errors.Is(err, syscall.ECONNREFUSED):
		return &reasonError{kind: ErrRefused, text: "connection refused", err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), isTimeout(err):
		return &reasonError{kind: ErrTimeout, text: fmt.Sprintf("no TCP connection within %v", timeout), err: err}
	}
	return &reasonError{text: cause(err), err: err}
}

// cause is the innermost text of a socket error: "connection reset by
// peer" of "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by
// peer", which names the addresses and the system call.
func cause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// reasonError is an error of a kind (a sentinel, for errors.Is) told in its
// own words: neither the kind's text nor the wrapped error's, which would
// repeat the address or the kind.
type reasonError struct {
	kind error // nil: no kind of the reactor's
	text string
	err  error
}

func (e *reasonError) Error() string { return e.text }

func (e *reasonError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// engineHandler adapts gnet's events to Conn and Handler.
type engineHandler struct{ r *Reactor }

func (h *engineHandler) OnBoot(e gnet.Engine) gnet.Action {
	h.r.booted <- e
	return gnet.None
}

func (h *engineHandler) OnShutdown(gnet.Engine) {}

func (h *engineHandler) OnTick() (time.Duration, gnet.Action) {
	h.r.tickOne.Do(func() { close(h.r.ticked) })
	return time.Hour, gnet.None
}

func (h *engineHandler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	r := h.r
	switch c := gc.Context().(type) {
	case *Conn:
		switch c.state {
		case stateAccepting:
			if r.closing {
				return nil, gnet.Close
			}
			c.attachNew(gc)
			r.cur = c
			r.handler.OnOpen(c)
			r.cur = nil
			return nil, c.pendingAction()
		case stateDialing:
			if _, ok := r.dials[c]; !ok || r.closing {
				return nil, gnet.Close // failed meanwhile; gnet's fd is the only one
			}
			delete(r.dials, c)
			c.attachNew(gc)
			r.cur = c
			c.dialDone(c, nil)
			r.cur = nil
			return nil, c.pendingAction()
		case stateResuming:
			c.gc = gc
			c.state = stateOpen
			c.enrolling = false
			if c.wantPause {
				c.wantPause = false
				c.state = statePaused
				c.detaching = true // keeps its own descriptor: see detached
				return nil, gnet.Close
			}
			c.setFd(gc.Fd(), false) // one descriptor per connection again
			r.deliverInGnet(c, nil)
			return nil, c.pendingAction()
		}
		return nil, gnet.Close
	}
	return nil, gnet.None
}

func (h *engineHandler) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok {
		_, _ = gc.Discard(-1)
		if _, wake := gc.Context().(loopHandle); wake {
			h.r.drain()
		}
		return gnet.None
	}
	buf, _ := gc.Next(-1)
	h.r.deliverInGnet(c, buf)
	return c.pendingAction()
}

func (h *engineHandler) OnClose(gc gnet.Conn, err error) gnet.Action {
	r := h.r
	c, ok := gc.Context().(*Conn)
	if !ok || c.gc != gc {
		return gnet.None
	}
	c.gc = nil
	if c.detaching {
		c.detaching = false
		c.detached(gc.Fd())
		return gnet.None
	}
	if c.state == stateClosed {
		return gnet.None
	}
	switch {
	case err == nil:
		// gnet closes connections on its own only when its loop ends: the
		// reactor is failing (Close closed them all before).
		err = ErrClosed
		if !r.closing {
			err = r.failure(nil)
		}
	case errors.Is(err, io.EOF):
		err = ErrPeerClosed // an ordinary close: nothing more to say
	default:
		err = &reasonError{kind: ErrPeerClosed, text: cause(err), err: err}
	}
	c.closeNow(err, true, false)
	return gnet.None
}

// deliverInGnet hands bytes to the handler inside a gnet callback of c.
func (r *Reactor) deliverInGnet(c *Conn, buf []byte) {
	prev := r.cur
	r.cur = c
	c.deliver(buf)
	r.cur = prev
}

// gnetLogger keeps gnet quiet: its errors go to the reactor's log at Debug,
// and the last one is kept, to name the cause if the loop dies (gnet logs
// why its loop exits and returns nothing). The reactor logs what matters
// itself.
type gnetLogger struct{ r *Reactor }

func (gnetLogger) Debugf(string, ...any) {}
func (gnetLogger) Infof(string, ...any)  {}
func (gnetLogger) Warnf(string, ...any)  {}
func (l *gnetLogger) Errorf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	l.r.gnetErr.Store(&s)
	l.r.log.Debug("reactor: gnet: " + s)
}
func (l *gnetLogger) Fatalf(format string, args ...any) { l.Errorf(format, args...) }

func setKeepAlive(fd int, idle time.Duration) error {
	secs := max(int(idle/time.Second), 1)
	for _, o := range [][3]int{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, max(secs/5, 1)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 5},
	} {
		if err := unix.SetsockoptInt(fd, o[0], o[1], o[2]); err != nil {
			return fmt.Errorf("keepalive: %w", err)
		}
	}
	return nil
}
