package perf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochirp/chirp/node"
)

// ErrStalled is the failure of a run in which no pass ended for
// Load.Stall: an echo that never came, or a send that never finished.
var ErrStalled = errors.New("perf: no pass ended in time")

// ErrBadEcho is the failure of a pass whose echo differs from what was sent.
var ErrBadEcho = errors.New("perf: echo differs from the message sent")

// DefaultStall is the Load.Stall used when it is zero.
const DefaultStall = 10 * time.Second

// Client is a local node that drives passes to an echo peer: it sends
// messages, matches the messages coming back by identity and sends the next
// one when a pass ended. One Run at a time.
type Client struct {
	// Node is the local node. Client owns its handler.
	Node *node.Node

	style Style
	run   atomic.Pointer[loadRun] // the run whose echoes are expected
	stray atomic.Uint64
	busy  sync.Mutex
}

// NewClient starts the local node with cfg. cfg.Handler, cfg.Receive and
// cfg.ManualRelease are overwritten: received messages are matched against
// the passes of the current run (compared in place, nothing copied), then
// released by the node.
//
// With StyleInline ("" too) that happens on the node's event loop, and a
// pass that ended there (its echo came, its send finished) starts the next
// one from there with SendOnLoop. With StyleWorkers the match runs on
// cfg.Workers goroutines and every send is handed to the loop (SendAsync).
func NewClient(cfg node.Config, style Style) (*Client, error) {
	style, err := style.check()
	if err != nil {
		return nil, err
	}
	c := &Client{style: style}
	cfg.Handler = node.HandlerFunc(c.receive)
	cfg.ManualRelease = false
	cfg.Receive = node.ReceiveWorkers
	if style == StyleInline {
		cfg.Receive = node.ReceiveInline
	}
	n, err := node.Start(cfg)
	if err != nil {
		return nil, err
	}
	c.Node = n
	return c, nil
}

// Close closes the local node, giving sends in flight until ctx ends.
func (c *Client) Close(ctx context.Context) error {
	return c.Node.Close(ctx)
}

// Style is how the client handles received messages.
func (c *Client) Style() Style { return c.style }

// Stray is the number of received messages that belonged to no pass in
// flight: echoes of passes already ended or failed, or messages from
// elsewhere.
func (c *Client) Stray() uint64 { return c.stray.Load() }

// Progress is how many passes of the current (or last) run ended well and
// how many failed so far; safe to call while Run works.
func (c *Client) Progress() (passes, failed int64) {
	r := c.run.Load()
	if r == nil {
		return 0, 0
	}
	return r.passes.Load(), r.failed.Load()
}

// Load is what Client.Run does.
type Load struct {
	// Addr is the echo peer, "host:port".
	Addr string
	// InFlight is how many messages are in flight at once: 1 for single
	// passes, more for pooled ones. 0 means 1.
	InFlight int
	// Header and Data are the header and payload of every message. They are
	// shared by all messages in flight and must not change during the run.
	Header, Data []byte
	// Count stops the run after this many passes were started; Duration
	// stops starting passes after this long, and passes that end later are
	// not counted. At least one must be set. Passes started before the stop
	// end (or fail) before Run returns, unless the run stalls or ctx ends.
	Count    int64
	Duration time.Duration
	// WaitEcho makes a pass end when its echo came back (and its send
	// finished). Without it a pass ends when the send finished: the remote
	// released it (synchronous node) or the kernel took it (asynchronous).
	WaitEcho bool
	// StopOnError ends the run at the first failed pass and makes Run
	// return its error. Without it failures are counted and the run goes on.
	StopOnError bool
	// Stall fails the run when no pass ended for this long; 0 means
	// DefaultStall.
	Stall time.Duration
}

// Outcome is what a run did.
type Outcome struct {
	Passes   int64         // passes that ended well and were counted
	Failed   int64         // passes that failed
	Elapsed  time.Duration // from the first send to the last pass counted
	FirstErr error         // the first failure, nil when none
}

// Rate is Passes per second of Elapsed; 0 when nothing was counted.
func (o Outcome) Rate() float64 {
	if o.Passes == 0 || o.Elapsed <= 0 {
		return 0
	}
	return float64(o.Passes) / o.Elapsed.Seconds()
}

// lane is one message in flight, sent again each time its pass ended. Its
// identity is the run's nonce, the lane's index and a generation bumped on
// every send, so an echo names the exact pass it belongs to.
type lane struct {
	r     *loadRun
	idx   uint32
	m     *node.Message
	gen   atomic.Uint32
	state atomic.Uint32 // laneSent | laneEchoed | laneEnded, reset per send
	sent  func(*node.Message, error)
}

const (
	laneSent   = 1 << iota // the send finished well
	laneEchoed             // the echo came back
	laneEnded              // the pass ended (well or not)
)

// laneIdle tells the driver that a lane stopped: its pass failed (err),
// or the run is stopping.
type laneIdle struct {
	l   *lane
	err error
}

// loadRun is the state of one Run shared with the node's callbacks. A lane
// whose pass ended well starts its next pass at once, on whatever goroutine
// saw the end (the node's loop or a handler worker), as an application
// replying from its callbacks would; only failures and the stop go through
// the driver goroutine in Run.
type loadRun struct {
	n        *node.Node
	inline   bool // StyleInline: callbacks run on the loop and send with SendOnLoop
	nonce    [8]byte
	lanes    []*lane
	header   []byte
	data     []byte
	waitEcho bool
	start    time.Time
	deadline time.Duration // since start; 0: none
	count    int64         // passes to start; 0: no limit
	idle     chan laneIdle // capacity len(lanes): a lane goes idle once per send

	started  atomic.Int64 // passes started (may pass count by the lanes refused)
	passes   atomic.Int64 // passes ended well before the deadline
	failed   atomic.Int64 // passes that failed, for Progress
	elapsed  atomic.Int64 // since start, of the last pass counted
	lastEnd  atomic.Int64 // since start, of the last pass ended
	stopping atomic.Bool
}

// next starts l's next pass unless the run is over; false: l is idle.
// onLoop says the caller runs on the node's event loop.
func (r *loadRun) next(l *lane, onLoop bool) bool {
	if r.stopping.Load() || (r.count > 0 && r.started.Add(1) > r.count) {
		return false
	}
	if r.count == 0 {
		r.started.Add(1)
	}
	l.send(onLoop)
	return true
}

// Run sends passes as ld says and returns what happened. The error is
// non-nil when ld is invalid, when ctx ended, when the run stalled, or, with
// ld.StopOnError, at the first failure; the Outcome is filled in all cases.
func (c *Client) Run(ctx context.Context, ld Load) (Outcome, error) {
	var out Outcome
	dst, err := node.ResolveAddr(ctx, ld.Addr)
	if err != nil {
		return out, err
	}
	if ld.Count <= 0 && ld.Duration <= 0 {
		return out, fmt.Errorf("%w: a load needs a count or a duration", node.ErrValue)
	}
	if ld.InFlight < 0 {
		return out, fmt.Errorf("%w: %d in flight", node.ErrValue, ld.InFlight)
	}
	inflight := max(ld.InFlight, 1)
	if ld.Count > 0 {
		inflight = int(min(int64(inflight), ld.Count))
	}
	stall := ld.Stall
	if stall <= 0 {
		stall = DefaultStall
	}
	if !c.busy.TryLock() {
		return out, errors.New("perf: Client.Run called during another run")
	}
	defer c.busy.Unlock()

	r := &loadRun{n: c.Node, inline: c.style == StyleInline, header: ld.Header, data: ld.Data, waitEcho: ld.WaitEcho,
		deadline: max(ld.Duration, 0), count: max(ld.Count, 0), idle: make(chan laneIdle, inflight)}
	_, _ = rand.Read(r.nonce[:])
	r.lanes = make([]*lane, inflight)
	for i := range r.lanes {
		l := &lane{r: r, idx: uint32(i), m: &node.Message{Addr: dst, Header: ld.Header, Data: ld.Data}}
		l.sent = l.onSent
		r.lanes[i] = l
	}
	c.run.Store(r)

	var stopErr error
	stop := func(err error) {
		r.stopping.Store(true)
		if stopErr == nil {
			stopErr = err
		}
	}
	result := func() (Outcome, error) {
		out.Passes = r.passes.Load()
		out.Elapsed = time.Duration(r.elapsed.Load())
		return out, stopErr
	}
	r.start = time.Now()
	active := 0
	for _, l := range r.lanes {
		if r.next(l, false) {
			active++
		}
	}
	every := stall / 8 // watch for stalls; and for the deadline, should every lane hang
	if r.deadline > 0 {
		every = min(every, r.deadline/4)
	}
	tick := time.NewTicker(max(every, 5*time.Millisecond))
	defer tick.Stop()
	for active > 0 {
		select {
		case e := <-r.idle:
			if e.err != nil {
				out.Failed++
				r.failed.Add(1)
				if out.FirstErr == nil {
					out.FirstErr = e.err
				}
				if ld.StopOnError {
					stop(e.err)
				}
				if r.next(e.l, false) {
					continue
				}
			}
			active--
		case now := <-tick.C:
			since := now.Sub(r.start)
			if r.deadline > 0 && since >= r.deadline {
				r.stopping.Store(true)
			}
			if since-time.Duration(r.lastEnd.Load()) > stall {
				stop(fmt.Errorf("%w: none of %d passes to %s ended within %v (%d passes done)",
					ErrStalled, active, ld.Addr, stall, r.passes.Load()))
				return result()
			}
		case <-ctx.Done():
			stop(ctx.Err())
			return result()
		}
	}
	return result()
}

// send starts the lane's next pass (the lane is idle); onLoop: from the
// node's event loop, where SendOnLoop skips the hand-off.
func (l *lane) send(onLoop bool) {
	gen := l.gen.Add(1)
	id := &l.m.Identity
	copy(id[:8], l.r.nonce[:])
	binary.BigEndian.PutUint32(id[8:12], l.idx)
	binary.BigEndian.PutUint32(id[12:16], gen)
	l.state.Store(0)
	var err error
	if onLoop {
		err = l.r.n.SendOnLoop(l.m, l.sent)
	} else {
		err = l.r.n.SendAsync(l.m, l.sent)
	}
	if err != nil {
		l.end(err, onLoop)
	}
}

// onSent is the send's completion (on the node's loop).
func (l *lane) onSent(_ *node.Message, err error) {
	if err != nil {
		l.end(err, l.r.inline)
		return
	}
	if old := l.state.Or(laneSent); !l.r.waitEcho || old&laneEchoed != 0 {
		l.end(nil, l.r.inline)
	}
}

// end finishes the lane's pass once, whoever comes first, and starts the
// next one (onLoop: the caller runs on the node's event loop) or tells the
// driver the lane is idle. A failed pass always goes to the driver, which
// counts it and decides whether the lane goes on.
func (l *lane) end(err error, onLoop bool) {
	if l.state.Or(laneEnded)&laneEnded != 0 {
		return
	}
	r := l.r
	now := int64(time.Since(r.start))
	r.lastEnd.Store(now)
	if err != nil {
		r.idle <- laneIdle{l, err}
		return
	}
	if r.deadline > 0 && now >= int64(r.deadline) {
		r.stopping.Store(true)
	} else {
		r.passes.Add(1)
		for { // ends race each other: keep the latest
			e := r.elapsed.Load()
			if now <= e || r.elapsed.CompareAndSwap(e, now) {
				break
			}
		}
	}
	if !r.next(l, onLoop) {
		r.idle <- laneIdle{l, nil}
	}
}

// receive matches a received message against the passes in flight (on the
// node's loop with StyleInline, else on a worker goroutine; the node
// releases m afterwards, so nothing of it is kept).
func (c *Client) receive(m *node.Message) {
	r := c.run.Load()
	if r == nil || !r.waitEcho || !bytes.Equal(m.Identity[:8], r.nonce[:]) {
		c.stray.Add(1)
		return
	}
	idx := binary.BigEndian.Uint32(m.Identity[8:12])
	gen := binary.BigEndian.Uint32(m.Identity[12:16])
	if idx >= uint32(len(r.lanes)) || r.lanes[idx].gen.Load() != gen {
		c.stray.Add(1)
		return
	}
	l := r.lanes[idx]
	old := l.state.Or(laneEchoed)
	switch {
	case old&(laneEchoed|laneEnded) != 0:
		c.stray.Add(1) // a second echo, or one after the pass failed
	case !bytes.Equal(m.Data, r.data) || !bytes.Equal(m.Header, r.header):
		l.end(fmt.Errorf("%w: from %s: %d header and %d data bytes, sent %d and %d",
			ErrBadEcho, m.Addr, len(m.Header), len(m.Data), len(r.header), len(r.data)), r.inline)
	case old&laneSent != 0:
		l.end(nil, r.inline)
	}
}
