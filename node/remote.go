package node

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/reactor"
)

// remote is a peer node, keyed by (IP, announced port). It owns the send
// queues, the serial counter, the one message waiting for its ACK
// (synchronous mode) and its current connection. Loop-owned.
type remote struct {
	key      netip.AddrPort
	conn     *conn // current connection, nil when none
	queue    deque[*Message]
	ctrl     []ctrlFrame // ACKs and NOOPs, written before user messages
	waitAck  *Message
	serial   uint32
	active   time.Time
	dialing  bool
	blocked  bool           // reconnect debounce after a connection loss
	ackTimer *reactor.Timer // deadline of waitAck, reused
	removed  bool
	dirty    bool // waiting for process after the current one
}

type ctrlFrame struct {
	typ codec.Type
	id  codec.Identity
}

func addrKey(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (n *Node) remoteFor(key netip.AddrPort) *remote {
	if rem := n.remotes[key]; rem != nil {
		return rem
	}
	rem := &remote{key: key, serial: uint32(n.rng.Int32()), active: n.now()}
	n.remotes[key] = rem
	n.stats.remotes.Add(1)
	return rem
}

// enqueue queues a user message on its remote (loop).
func (n *Node) enqueue(m *Message) {
	if n.closing {
		n.finish(m, fmt.Errorf("%w: node closing", ErrShutdown))
		return
	}
	key := addrKey(m.Addr)
	if !key.Addr().IsValid() || key.Port() == 0 {
		n.finish(m, fmt.Errorf("%w: the destination needs an IP address and a port", ErrValue))
		return
	}
	if n.needsTLS(key.Addr()) && n.tlsClient == nil {
		n.finish(m, errNoCredentials)
		return
	}
	rem := n.remoteFor(key)
	if rem.conn != nil && n.now().Sub(rem.active) > n.s.reuse*3/4 {
		// Probe a connection idle this long before trusting it.
		rem.ctrl = append(rem.ctrl, ctrlFrame{typ: codec.Noop})
	}
	m.remote = rem
	rem.queue.push(m)
	n.process(rem)
}

// process writes what the remote may write now: control frames, then user
// messages (one awaiting its ACK in synchronous mode; in asynchronous mode
// as many as the kernel takes). Without a connection it dials.
//
// process is not reentrant: completion callbacks it runs may send or
// release (SendOnLoop, ReleaseOnLoop), which asks for process again; such
// remotes are processed after the current one.
func (n *Node) process(rem *remote) {
	if n.processing {
		if !rem.dirty {
			rem.dirty = true
			n.dirty = append(n.dirty, rem)
		}
		return
	}
	n.processing = true
	n.processRemote(rem)
	n.uncork()
}

// cork makes process calls only note their remote until uncork, so that
// the frames a burst of work produces (echoes of a chunk of received
// frames, a burst of posted sends) share one writev per connection. It
// reports whether this call corked (and must uncork).
func (n *Node) cork() bool {
	if n.processing {
		return false
	}
	n.processing = true
	return true
}

// uncork processes the remotes noted meanwhile and ends the cork.
func (n *Node) uncork() {
	for i := 0; i < len(n.dirty); i++ { // processRemote may append
		r := n.dirty[i]
		n.dirty[i] = nil
		r.dirty = false
		n.processRemote(r)
	}
	n.dirty = n.dirty[:0]
	n.processing = false
}

func (n *Node) processRemote(rem *remote) {
	for !rem.removed {
		c := rem.conn
		if c == nil || !c.ready || c.closed {
			if c == nil && rem.queue.len() > 0 && !rem.dialing && !rem.blocked && !n.closing {
				n.dial(rem)
			}
			return
		}
		if c.rc.Buffered() > 0 {
			return // continue when the kernel took the rest (drained)
		}
		hdrs := n.hdrs[:0]
		for _, f := range rem.ctrl {
			rem.serial++
			h := codec.FrameHeader{Identity: f.id, Serial: rem.serial, Type: f.typ}
			hdrs = h.Append(hdrs)
			if f.typ == codec.Ack {
				n.stats.acksOut.Add(1)
			}
		}
		nctrl := len(rem.ctrl)
		rem.ctrl = rem.ctrl[:0]
		batch := n.batch[:0]
		if n.s.Asynchronous {
			for rem.queue.len() > 0 && len(batch) < 64 {
				batch = append(batch, rem.queue.pop())
			}
		} else if rem.waitAck == nil && rem.queue.len() > 0 {
			batch = append(batch, rem.queue.pop())
		}
		if nctrl == 0 && len(batch) == 0 {
			return
		}
		typ := codec.Type(0)
		if !n.s.Asynchronous {
			typ = codec.ReqAck
		}
		for _, m := range batch {
			rem.serial++
			m.Serial = rem.serial
			h := codec.FrameHeader{Identity: m.Identity, Serial: m.Serial, DataLen: uint32(len(m.Data)),
				HeaderLen: uint16(len(m.Header)), Type: typ}
			hdrs = h.Append(hdrs)
		}
		bufs := n.bufs[:0]
		if nctrl > 0 {
			bufs = append(bufs, hdrs[:nctrl*codec.FrameHeaderSize])
		}
		for i, m := range batch {
			off := (nctrl + i) * codec.FrameHeaderSize
			bufs = append(bufs, hdrs[off:off+codec.FrameHeaderSize], m.Header, m.Data)
			n.stats.msgOut.Add(1)
			n.stats.bytesOut.Add(uint64(len(m.Header) + len(m.Data)))
		}
		err := c.write(bufs)
		clear(bufs)
		n.hdrs, n.bufs = hdrs, bufs[:0]
		now := n.now()
		if !n.s.Asynchronous {
			for _, m := range batch { // at most one
				rem.waitAck = m
				if rem.ackTimer == nil {
					rem.ackTimer = n.r.NewTimer(func() { n.sendTimedOut(rem.waitAck) })
				}
				rem.ackTimer.Reset(n.s.timeout)
				m.timer = rem.ackTimer
			}
			n.batch = batch[:0]
			if err == nil {
				c.active, rem.active = now, now
			}
			return // the next message waits for the ACK
		}
		if err != nil || c.rc.Buffered() > 0 {
			c.writing = append(c.writing, batch...)
			clear(batch)
			n.batch = batch[:0]
			if c.writeTimer == nil && err == nil {
				c.writeTimer = n.r.AfterFunc(n.s.timeout, func() { n.writeTimedOut(c) })
			}
			return
		}
		c.active, rem.active = now, now
		for i, m := range batch {
			batch[i] = nil
			n.finish(m, nil)
		}
		n.batch = batch[:0]
	}
}

// drained: the kernel took all buffered bytes of c.
func (n *Node) drained(c *conn) {
	if c.writeTimer != nil {
		c.writeTimer.Stop()
		c.writeTimer = nil
	}
	now := n.now()
	c.active = now
	w := c.writing
	c.writing = nil
	for _, m := range w {
		n.finish(m, nil)
	}
	for _, rem := range c.remotes() {
		rem.active = now
		n.process(rem)
	}
}

func (n *Node) sendTimedOut(m *Message) {
	if m == nil {
		return
	}
	rem := m.remote
	if rem == nil || rem.waitAck != m {
		return
	}
	err := fmt.Errorf("%w: no ACK within %v", ErrTimeout, n.s.timeout)
	if rem.conn != nil {
		n.closeConn(rem.conn, err)
		return
	}
	rem.waitAck = nil
	n.finish(m, err)
}

func (n *Node) writeTimedOut(c *conn) {
	c.writeTimer = nil
	n.closeConn(c, fmt.Errorf("%w: write not finished within %v", ErrTimeout, n.s.timeout))
}

// finish completes a send (loop).
func (n *Node) finish(m *Message, err error) {
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.remote = nil
	if err != nil && err != errWithdrawn {
		n.stats.sendErr.Add(1)
		switch {
		case errors.Is(err, ErrTimeout):
			n.stats.timeouts.Add(1)
		case errors.Is(err, ErrCannotConnect):
			n.stats.cannotConnect.Add(1)
		case errors.Is(err, ErrTLS):
			n.stats.tlsErr.Add(1)
		case errors.Is(err, ErrShutdown):
			n.stats.shutdowns.Add(1)
		}
	}
	if err != nil {
		err = fmt.Errorf("send to %s: %w", m.Addr, err)
	}
	// Taken before m is free: a new send of m may set them at once.
	done, wait := m.done, m.waitCh
	m.done, m.waitCh = nil, nil
	n.unpend()
	m.inFlight.Store(false)
	if wait != nil {
		wait <- err // Send's channel, with room for it
	}
	if done != nil {
		done(m, err)
	}
	if m.releaseAfterSend && !m.inFlight.Load() { // done may have sent it again
		m.releaseAfterSend = false
		n.release(m)
	}
}

// dial opens a connection for rem (loop).
func (n *Node) dial(rem *remote) {
	rem.dialing = true
	c := &conn{n: n, dialFor: rem}
	c.connectTimer = n.r.AfterFunc(n.s.connectTimeout, func() { n.connectTimedOut(c) })
	if err := n.r.Dial(rem.key, n.s.connectTimeout, c, func(rc *reactor.Conn, err error) { n.dialed(c, rc, err) }); err != nil {
		c.connectTimer.Stop()
		rem.dialing = false
	}
}

func (n *Node) dialed(c *conn, rc *reactor.Conn, err error) {
	rem := c.dialFor
	if err != nil {
		c.connectTimer.Stop()
		if !rem.dialing || c.closed {
			return
		}
		c.closed = true
		rem.dialing = false
		n.connLost(rem, nil, dialError(err))
		return
	}
	if c.closed { // connect timer fired first
		rc.Close(nil)
		return
	}
	n.openConn(c, rc)
}

func (n *Node) connectTimedOut(c *conn) {
	if c.ready || c.closed {
		return
	}
	err := fmt.Errorf("%w: no connection within %v", ErrTimeout, n.s.connectTimeout)
	if c.rc != nil {
		n.closeConn(c, err)
		return
	}
	c.closed = true
	c.dialFor.dialing = false
	n.connLost(c.dialFor, nil, err)
}

// dialError is the node's error for a failed dial. The reactor's says
// what happened without the address; the send it fails names the remote.
func dialError(err error) error {
	switch {
	case errors.Is(err, reactor.ErrTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, reactor.ErrClosed):
		return fmt.Errorf("%w: %v", ErrShutdown, err)
	}
	return fmt.Errorf("%w: %v", ErrCannotConnect, err)
}

// connLost applies libchirp's failure rule (PROTOCOL.md §2.7) to rem after
// its connection c (nil: a failed connect) went away with err: the message
// waiting for its ACK and those being written fail; if there were none,
// the head of the queue fails, so a dead peer costs one message per
// attempt. The rest stay queued and go out on a new connection after a
// short random debounce.
func (n *Node) connLost(rem *remote, c *conn, err error) {
	failed := false
	if m := rem.waitAck; m != nil {
		rem.waitAck = nil
		n.finish(m, err)
		failed = true
	}
	if c != nil && len(c.writing) > 0 {
		w := c.writing
		c.writing = nil
		for _, m := range w {
			n.finish(m, err)
		}
		failed = true
	}
	if !failed && rem.queue.len() > 0 {
		n.finish(rem.queue.pop(), err)
	}
	rem.ctrl = rem.ctrl[:0]
	if rem.removed || n.closing {
		return
	}
	rem.blocked = true
	n.r.AfterFunc(time.Duration(50+n.rng.IntN(500))*time.Millisecond, func() {
		rem.blocked = false
		n.process(rem)
	})
}

// dropRemote fails everything queued on rem and forgets it.
func (n *Node) dropRemote(rem *remote, err error) {
	if rem.removed {
		return
	}
	rem.removed = true
	delete(n.remotes, rem.key)
	n.stats.remotes.Add(-1)
	if m := rem.waitAck; m != nil {
		rem.waitAck = nil
		n.finish(m, err)
	}
	for _, m := range rem.queue.drain() {
		n.finish(m, err)
	}
	if rem.conn != nil {
		n.closeConn(rem.conn, err)
	}
}

// scheduleGC arms the next garbage collection at a random point in
// [reuse/2, reuse), as libchirp does.
func (n *Node) scheduleGC() {
	if n.closing {
		return
	}
	half := n.s.reuse / 2
	n.gcTimer = n.r.AfterFunc(half+time.Duration(n.rng.Int64N(int64(half))), n.gc)
}

// gc closes replaced connections and forgets remotes idle for the reuse
// time (closing their connections).
func (n *Node) gc() {
	now := n.now()
	n.logForgotten(now)
	for c := range n.old {
		if now.Sub(c.active) > n.s.reuse {
			n.closeConn(c, fmt.Errorf("%w: idle replaced connection", ErrShutdown))
		}
	}
	for _, rem := range n.remotes {
		if now.Sub(rem.active) > n.s.reuse && !rem.blocked && !rem.dialing && rem.waitAck == nil &&
			(rem.conn == nil || len(rem.conn.writing) == 0) {
			n.dropRemote(rem, fmt.Errorf("%w: remote idle for %v", ErrShutdown, n.s.reuse))
		}
	}
	for c := range n.conns { // accepted connections that never handshook
		if !c.ready && c.dialFor == nil && now.Sub(c.active) > n.s.connectTimeout {
			n.closeConn(c, fmt.Errorf("%w: no handshake within %v", ErrTimeout, n.s.connectTimeout))
		}
	}
	n.scheduleGC()
}
