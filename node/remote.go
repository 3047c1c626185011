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
// queue, the serial counter, the one message waiting for its ACK
// (synchronous mode) and its current connection. Control frames (ACKs,
// NOOPs) are owed per connection (conn.ctrl). Loop-owned.
type remote struct {
	key     netip.AddrPort
	conn    *conn // current connection, nil when none
	queue   deque[*Message]
	waitAck *Message
	serial  uint32
	active  time.Time
	// progress is when the remote last took something (a handshake, an
	// ACK, bytes the kernel took) or, if later, when its queue last became
	// non-empty. Queued messages fail stallLimit after it (stalled).
	progress   time.Time
	stallTimer *reactor.Timer
	stallArmed bool
	// unreachable is why the last connect attempt failed, or the queue
	// stalled, at unreachableAt, while nothing came from the remote since.
	// For stallLimit after it, sends fail at once (enqueue).
	unreachable   error
	unreachableAt time.Time
	probe         bool // dial although nothing is queued: is it back?
	dialing       bool
	blocked       bool           // reconnect debounce after a connection loss
	ackTimer      *reactor.Timer // deadline of waitAck, reused
	removed       bool
	dirty         bool // waiting for process after the current one
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
	now := n.now()
	if rem.unreachable != nil && rem.conn == nil {
		if now.Sub(rem.unreachableAt) < n.stallLimit() {
			// Known unreachable a moment ago: fail at once, with that
			// reason, rather than after another attempt, so that a
			// producer sending one message after the other is not slowed
			// to one message per attempt. One attempt runs meanwhile (at
			// most one per reconnect debounce) to see whether it is back.
			rem.probe = true
			n.process(rem)
			n.finish(m, rem.unreachable)
			return
		}
		rem.unreachable = nil // old news: try again
	}
	if c := rem.conn; c != nil && !c.noopOwed && now.Sub(rem.active) > n.s.reuse*3/4 {
		// Probe a connection idle this long before trusting it.
		c.ctrl = append(c.ctrl, ctrlFrame{typ: codec.Noop})
		c.noopOwed = true
	}
	m.remote = rem
	if rem.queue.len() == 0 {
		rem.progress = now
	}
	rem.queue.push(m)
	if !rem.stallArmed {
		n.armStall(rem, n.stallLimit())
	}
	n.process(rem)
}

// The reconnect debounce after a lost connection is random in
// [debounceMin, debounceMin+debounceSpread), as libchirp's 50–549 ms.
const (
	debounceMin    = 50 * time.Millisecond
	debounceSpread = 500 * time.Millisecond
)

// stallLimit is how long a remote may take nothing while messages wait:
// 2×Timeout, the connect timeout, after the longest reconnect debounce. A
// healthy remote that lost its connection takes the next handshake within
// it, however short Timeout is.
func (n *Node) stallLimit() time.Duration { return 2*n.s.timeout + debounceMin + debounceSpread }

// progressed notes that rem took something at now.
func (rem *remote) progressed(now time.Time) { rem.progress, rem.unreachable = now, nil }

// unreachableSince notes that rem could not be reached, for err.
func (rem *remote) unreachableSince(now time.Time, err error) {
	rem.unreachable, rem.unreachableAt = err, now
}

// armStall runs stalled after d.
func (n *Node) armStall(rem *remote, d time.Duration) {
	if rem.stallTimer == nil {
		rem.stallTimer = n.r.NewTimer(func() { n.stalled(rem) })
	}
	rem.stallArmed = true
	rem.stallTimer.Reset(d)
}

// stalled fails every queued message of rem when rem took nothing for
// stallLimit (about 2×Timeout) while messages waited. A remote that
// refuses connections, or whose process is frozen (its kernel completes
// connects, nothing answers the handshake), so costs each queued send at
// most that long, instead of one failed message per reconnect attempt. A
// remote that makes progress, however slowly, never stalls: each written
// message has its own deadline of Timeout, and a reconnect takes less than
// stallLimit. The timer is not reset by progress but looks again when it
// fires, so it runs at most once per stallLimit while messages wait.
func (n *Node) stalled(rem *remote) {
	rem.stallArmed = false
	if rem.removed || rem.queue.len() == 0 {
		return
	}
	limit := n.stallLimit()
	idle := n.now().Sub(rem.progress)
	if idle < limit {
		n.armStall(rem, limit-idle)
		return
	}
	err := fmt.Errorf("%w: remote made no progress for %v", ErrTimeout, idle.Round(time.Millisecond))
	rem.unreachableSince(n.now(), err)
	n.failQueue(rem, err)
}

// failQueue fails every message queued on rem. Sends made by the
// completions meanwhile stay queued for the next attempt.
func (n *Node) failQueue(rem *remote, err error) {
	for _, m := range rem.queue.drain() {
		n.finish(m, err)
	}
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
	n.flushDirty()
	n.processing = false
}

// flushDirty processes the remotes noted so far; the cork stays. A call
// made while one runs (from a send that finished, say) returns at once:
// the running one takes what was noted meanwhile.
func (n *Node) flushDirty() {
	if n.flushing {
		return
	}
	n.flushing = true
	for i := 0; i < len(n.dirty); i++ { // processRemote may append
		r := n.dirty[i]
		n.dirty[i] = nil
		r.dirty = false
		n.processRemote(r)
	}
	n.dirty = n.dirty[:0]
	n.flushing = false
}

func (n *Node) processRemote(rem *remote) {
	for !rem.removed {
		c := rem.conn
		if c == nil || !c.ready || c.closed {
			if c == nil && (rem.queue.len() > 0 || rem.probe) && !rem.dialing && !rem.blocked && !n.closing {
				n.dial(rem)
			}
			return
		}
		if c.rc.Buffered() > 0 {
			return // continue when the kernel took the rest (drained)
		}
		hdrs := n.appendCtrl(n.hdrs[:0], c, rem)
		nctrl := len(c.ctrl)
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
		n.hdrs, n.bufs = keepScratch(hdrs), bufs[:0]
		if nctrl > 0 {
			n.ctrlWritten(c)
		}
		now := n.now()
		if !n.s.Asynchronous {
			for _, m := range batch { // at most one
				rem.waitAck = m
				m.written = now
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
			c.writing = append(c.writing, batch...) // c.write armed the write deadline
			clear(batch)
			n.batch = batch[:0]
			return
		}
		c.active, rem.active = now, now
		if len(batch) > 0 {
			rem.progressed(now)
		}
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
		rem.progressed(now)
		n.process(rem)
	}
	n.flushConn(c)
	n.checkOutput(c)
}

// maxOwedCtrl bounds the control frames owed on one connection: at this
// many the node stops reading it (pauseForOutput). An honest peer is owed
// one or two (a synchronous sender waits for each ACK before its next
// message); only a peer that asks for ACKs and does not read them gets
// here. 256 frames are about 7 KiB on the wire.
const maxOwedCtrl = 256

// keptScratch is the capacity above which the node-wide header buffer is
// dropped after a write instead of kept for the next one.
const keptScratch = 64 << 10

func keepScratch(b []byte) []byte {
	if cap(b) > keptScratch {
		return nil
	}
	return b
}

// queueAck owes the peer the ACK of a message that arrived on c: it goes
// back on c while c is open, else on the remote's current connection. Not
// on the remote's current connection first, as libchirp does: any socket
// from the peer's IP can become that by announcing the peer's port, and
// would take the peer's ACKs (the peer matches ACKs per remote, so the
// wire is the same either way).
func (n *Node) queueAck(c *conn, id codec.Identity) {
	if c.closed {
		if c.remote == nil || c.remote.conn == nil {
			return // as libchirp: the sender failed the message with the connection
		}
		c = c.remote.conn
	}
	c.ctrl = append(c.ctrl, ctrlFrame{typ: codec.Ack, id: id})
	if len(c.ctrl) >= maxOwedCtrl && !c.outPaused {
		n.pauseForOutput(c)
	}
	n.flushConn(c)
}

// flushConn writes the control frames owed on c. On a remote's current
// connection processRemote writes them, ahead of user messages; this
// writes them on a connection that is no remote's current one any more
// (replaced by a newer handshake).
func (n *Node) flushConn(c *conn) {
	for _, rem := range c.remotes() {
		if rem.conn == c {
			n.process(rem)
			return
		}
	}
	if len(c.ctrl) == 0 || c.closed || !c.ready || c.remote == nil || c.rc.Buffered() > 0 {
		return // drained calls again
	}
	hdrs := n.appendCtrl(n.hdrs[:0], c, c.remote)
	bufs := [1][]byte{hdrs}
	if err := c.write(bufs[:]); err == nil {
		c.active = n.now()
	}
	n.hdrs = keepScratch(hdrs)
	n.ctrlWritten(c)
}

// appendCtrl appends the headers of the control frames owed on c, with
// rem's serials.
func (n *Node) appendCtrl(hdrs []byte, c *conn, rem *remote) []byte {
	for _, f := range c.ctrl {
		rem.serial++
		h := codec.FrameHeader{Identity: f.id, Serial: rem.serial, Type: f.typ}
		hdrs = h.Append(hdrs)
		if f.typ == codec.Ack {
			n.stats.acksOut.Add(1)
		}
	}
	return hdrs
}

// ctrlWritten: the control frames owed on c were handed to the reactor.
func (n *Node) ctrlWritten(c *conn) {
	c.ctrl, c.noopOwed = c.ctrl[:0], false
	if cap(c.ctrl) > 32 {
		c.ctrl = nil // a burst's capacity is not kept
	}
	n.checkOutput(c)
}

// pauseForOutput stops reading c: the peer is owed maxOwedCtrl control
// frames and does not read, and every message read would owe it one more.
// The peer gets nothing more until it reads. Reading resumes once all owed
// bytes are in the kernel (checkOutput); if that does not happen within
// Timeout, the write deadline closes c.
func (n *Node) pauseForOutput(c *conn) {
	c.outPaused = true
	if !c.waitBody {
		c.rc.PauseRead()
		n.stats.paused.Add(1)
	}
	if c.writeTimer == nil {
		c.armWriteTimer()
	}
}

// checkOutput resumes reading c, paused by pauseForOutput, when it owes
// nothing any more.
func (n *Node) checkOutput(c *conn) {
	if !c.outPaused || c.closed || len(c.ctrl) > 0 || c.rc.Buffered() > 0 {
		return
	}
	c.outPaused = false
	if c.writeTimer != nil { // armed by pauseForOutput: nothing is buffered now
		c.writeTimer.Stop()
		c.writeTimer = nil
	}
	if c.waitBody {
		return // still paused for a slot: release resumes
	}
	n.stats.paused.Add(-1)
	// Not from here: the write that called us may still use the scratch
	// buffers, and reading may deliver and write.
	_ = n.r.Submit(func() { n.readAgain(c) })
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
	if !m.written.IsZero() {
		if observe := n.s.OnSendDone; observe != nil {
			observe(n.now().Sub(m.written), err)
		}
		m.written = time.Time{}
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
	rem.dialing, rem.probe = true, false
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

// connLost handles rem's connection c going away with err (c nil or not
// ready: a connect attempt failed). An established connection follows
// libchirp's failure rule (docs/protocol.md §2.7): the message waiting for its
// ACK and those being written fail; if there were none, the head of the
// queue fails. The rest stay queued and go out on a new connection after a
// short random debounce. A failed connect fails the whole queue: the
// remote cannot be reached, and libchirp's one failure per attempt drains
// a dead remote at a few messages per second.
func (n *Node) connLost(rem *remote, c *conn, err error) {
	if !rem.removed && !n.closing {
		// Blocked first: completions below may send to rem again.
		rem.blocked = true
		n.r.AfterFunc(debounceMin+time.Duration(n.rng.Int64N(int64(debounceSpread))), func() {
			rem.blocked = false
			n.process(rem)
		})
	}
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
	switch {
	case c == nil || !c.ready:
		rem.unreachableSince(n.now(), err)
		n.failQueue(rem, err)
	case !failed && rem.queue.len() > 0:
		n.finish(rem.queue.pop(), err)
	}
}

// dropRemote fails everything queued on rem and forgets it.
func (n *Node) dropRemote(rem *remote, err error) {
	if rem.removed {
		return
	}
	rem.removed = true
	if rem.stallTimer != nil {
		rem.stallTimer.Stop()
	}
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
// [period/2, period), where period is the smaller of reuse/2 and the
// timeout. libchirp collects every [reuse/2, reuse), so an idle connection
// lives up to twice the reuse time; collecting more often closes it within
// ReuseTime + Timeout of its last use. A collection only walks the node's
// maps, so the cost is nothing next to that of a socket held twice as long.
func (n *Node) scheduleGC() {
	if n.closing {
		return
	}
	half := min(n.s.reuse/2, n.s.timeout) / 2
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
