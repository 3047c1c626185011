package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/reactor"
	"github.com/gochirp/chirp/slots"
	"github.com/gochirp/chirp/tlsconn"
)

// conn is one connection to a peer node, accepted or dialed. Loop-owned.
type conn struct {
	n        *Node
	rc       *reactor.Conn
	dec      *codec.Decoder
	pool     *slots.Pool
	slot     *slots.Slot // taken for the frame whose body is being read
	waitBody bool        // a frame header waits for a free slot; reading paused
	// outPaused: reading paused because the peer is owed maxOwedCtrl
	// control frames that it does not read (see queueAck).
	outPaused bool

	ready   bool // the peer's handshake arrived
	closed  bool
	heard   bool // bytes arrived from the peer
	peerID  codec.Identity
	port    uint16 // the port the peer announced
	remote  *remote
	dialFor *remote // the remote this connection was dialed for
	active  time.Time

	tls     *tlsconn.Session // nil for plaintext
	plainFn func([]byte)     // readPlain bound to c
	plain   []byte           // decrypted bytes waiting for a slot
	tlsUp   bool             // the TLS handshake succeeded
	// peerGone: the peer closed during the TLS handshake; the cleanup
	// waits for tlsDone, which knows why.
	peerGone bool

	held         [slots.MaxSlots]*Message // delivered messages by slot index, until released
	ctrl         []ctrlFrame              // ACKs and NOOPs owed on c, written before user messages
	noopOwed     bool                     // ctrl holds a NOOP probe
	writing      []*Message               // asynchronous messages not fully in the kernel yet
	writeTimer   *reactor.Timer
	connectTimer *reactor.Timer

	// Pipelining (see splitBurst): messages received in the read being
	// processed, the most one read has brought, and how many were
	// received since the node last wrote; reads and the most one of them
	// brought in the current window (see burstWindow).
	burst, burstMax, sinceFlush int
	reads, windowMax            int
}

// splitBurst is the smallest burstMax at which the replies to a burst are
// written in parts, each after a quarter of burstMax received messages,
// rather than all at the end of the read.
//
// Two nodes that pass a burst of messages back and forth (a pipelined
// request/reply exchange, an echo) otherwise take turns: each processes
// the whole burst while the other waits, and the two CPUs are never busy
// together. Written in quarters, the first replies reach the peer while
// the rest are processed, and four parts stay in flight. Measured with
// chirp bench, async pooled16 (16 in flight): TLS 5 B and 1 KiB gained a
// third or more, plaintext 5 B about 15 %. Parts of fewer than 4 messages cost
// more system calls and wake-ups than they win: every 4 messages at 64
// in flight halved the rate, every 16 left it unchanged. A connection whose
// reads never carried 16 messages, over its recent reads (burstWindow), is
// not split.
const splitBurst = 16

// remotes lists the remotes c serves (its own and, after a port mismatch,
// the one it was dialed for).
func (c *conn) remotes() []*remote {
	switch {
	case c.remote == nil && c.dialFor == nil:
		return nil
	case c.remote == nil:
		return []*remote{c.dialFor}
	case c.dialFor == nil || c.dialFor == c.remote:
		return []*remote{c.remote}
	}
	return []*remote{c.remote, c.dialFor}
}

// needsTLS is libchirp's rule: everything but exactly 127.0.0.1 and ::1
// is encrypted, unless encryption is off (or AlwaysEncrypt is on).
func (n *Node) needsTLS(a netip.Addr) bool {
	return !n.s.DisableEncryption && (n.s.AlwaysEncrypt || !tlsconn.IsLocal(a))
}

func (n *Node) accepted(rc *reactor.Conn) {
	if !n.ready {
		rc.Close(fmt.Errorf("%w: node still starting", ErrShutdown))
		return
	}
	if n.closing {
		rc.Close(fmt.Errorf("%w: node closing", ErrShutdown))
		return
	}
	if n.needsTLS(rc.RemoteAddr().Addr()) && n.tlsServer == nil {
		// Not even our handshake goes out: nothing leaves the machine in
		// plaintext unless the user turned encryption off.
		n.log.Warn("chirp: refused a peer", "peer", rc.RemoteAddr(), "err", errNoCredentials)
		rc.Close(errNoCredentials)
		return
	}
	n.openConn(&conn{n: n}, rc)
}

// errNoCredentials refuses a peer that needs TLS on a node without
// credentials, in both directions.
var errNoCredentials = fmt.Errorf("%w: peer needs TLS and this node has no credentials: set Config.CertChainPEM, or DisableEncryption", ErrTLS)

// Words for a plaintext/TLS mismatch: neither side can negotiate it, so
// each says what it saw.
var (
	errPeerPlaintext = fmt.Errorf("%w: peer speaks plaintext, not TLS: encryption is on at one end only", ErrTLS)
	errPeerTLS       = fmt.Errorf("%w: peer speaks TLS, not plaintext: encryption is on at one end only", ErrTLS)
	// A TLS server says nothing before the client's ClientHello and hangs
	// up on a plaintext handshake: the dialer sees only the close.
	errClosedBeforeHandshake = fmt.Errorf("%w: peer closed the connection without a handshake; it may expect TLS (encryption on at one end only)", ErrCannotConnect)
	// A peer that refuses a certificate says so in an alert, but one that
	// closes first (it has no credentials), or whose alert is still
	// unread when its close arrives, leaves only the close.
	errClosedDuringTLSHandshake = fmt.Errorf("%w: peer closed the connection during the TLS handshake; it may not trust our certificate, or have none", ErrTLS)
)

// openConn sets up a connected socket and sends our handshake at once, in
// one write, without waiting for the peer's. An encrypted connection runs
// the TLS handshake first (the dialer is the TLS client).
func (n *Node) openConn(c *conn, rc *reactor.Conn) {
	c.rc = rc
	rc.SetContext(c)
	c.dec = codec.NewDecoder(n.s.maxMsg)
	c.pool, _ = slots.New(n.s.slots) // validated in Config
	c.active = n.now()
	n.conns[c] = struct{}{}
	if n.needsTLS(rc.RemoteAddr().Addr()) {
		cfg, client := n.tlsServer, c.dialFor != nil
		if client {
			cfg = n.tlsClient
		}
		c.plainFn = func(p []byte) { n.readPlain(c, p) }
		c.tls = tlsconn.NewSession(n.r, cfg, client, n.s.connectTimeout,
			func(ct []byte) error { return c.deadlined(rc.Write(ct)) },
			func(err error) { n.tlsDone(c, err) })
		return
	}
	n.sendHandshake(c)
}

func (n *Node) sendHandshake(c *conn) {
	var hs [codec.HandshakeSize]byte
	b := codec.Handshake{Port: n.pubPort, Identity: n.identity}.Append(hs[:0])
	bufs := [1][]byte{b}
	if err := c.write(bufs[:]); err != nil { // one write: one TLS record
		n.closeConn(c, fmt.Errorf("%w: sending the handshake: %v", ErrWrite, err))
	}
}

func (n *Node) tlsDone(c *conn, err error) {
	if c.closed {
		return
	}
	if c.peerGone {
		switch {
		case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			err = errClosedDuringTLSHandshake
		default:
			err = tlsError(err)
		}
		n.connClosed(c, err)
		return
	}
	if err != nil {
		n.closeConn(c, tlsError(err))
		return
	}
	c.tlsUp = true
	n.sendHandshake(c)
}

// write sends bytes on c, through TLS when the connection has it. What
// the kernel does not take at once gets a deadline of Timeout, whatever
// the bytes are (user messages, ACKs, NOOPs, a handshake): a peer that
// does not read is closed (writeTimedOut), in both modes.
func (c *conn) write(bufs [][]byte) error {
	if c.tls != nil {
		return c.tls.Writev(bufs) // through the session's write function: deadlined
	}
	return c.deadlined(c.rc.Writev(bufs))
}

// deadlined arms the write deadline after a write of c that left bytes
// buffered, and passes the write's error on.
func (c *conn) deadlined(err error) error {
	if err == nil && c.writeTimer == nil && c.rc.Buffered() > 0 {
		c.armWriteTimer()
	}
	return err
}

func (c *conn) armWriteTimer() {
	n := c.n
	c.writeTimer = n.r.AfterFunc(n.s.timeout, func() {
		// The reason is logged here: the close itself is logged at Debug,
		// as any close that fails a send with the reason.
		n.log.Warn("chirp: closing connection: the peer does not read what we write", "peer", c.rc.RemoteAddr(),
			"buffered", c.rc.Buffered(), "owedControlFrames", len(c.ctrl), "timeout", n.s.timeout)
		n.writeTimedOut(c)
	})
}

// read takes what arrived on c (loop). It returns how much it consumed:
// everything, unless a plaintext frame waits for a slot (then the rest
// stays with the reactor; with TLS, leftover plaintext stays in c.plain).
func (n *Node) read(c *conn, data []byte) int {
	if n.cork() {
		defer n.uncork()
	}
	c.burst, c.sinceFlush = 0, 0
	defer c.endBurst()
	first := !c.heard
	c.heard = true
	if c.tls == nil {
		if first {
			switch tls, more := tlsconn.IsClientHello(data); {
			case tls:
				n.closeConn(c, errPeerTLS)
				return len(data)
			case more: // too few bytes to tell; they are offered again
				c.heard = false
				return 0
			}
		}
		return n.decode(c, data)
	}
	if err := c.tls.Feed(data, c.plainFn); err != nil && !c.closed {
		n.closeConn(c, tlsError(err))
	}
	return len(data)
}

// tlsError is the node's error for a failed TLS session.
func tlsError(err error) error {
	if errors.Is(err, tlsconn.ErrNotTLS) {
		return errPeerPlaintext
	}
	return fmt.Errorf("%w: %v", ErrTLS, err)
}

// readPlain decodes decrypted bytes, keeping what it cannot take yet.
func (n *Node) readPlain(c *conn, p []byte) {
	if len(c.plain) > 0 || c.waitBody || c.outPaused {
		c.plain = append(c.plain, p...)
		return
	}
	if k := n.decode(c, p); k < len(p) && !c.closed {
		c.plain = append(c.plain, p[k:]...)
	}
}

// decode feeds plaintext to c's decoder (loop). It returns how much it
// consumed: everything, unless a frame waits for a slot.
//
// It reads the clock once for all frames of data: the messages it
// delivers share that time as their delivery time, and a frame that
// waited for a slot is delivered by a later call, with that call's time.
func (n *Node) decode(c *conn, data []byte) int {
	n.touch(c)
	off := 0
	for !c.closed {
		if c.waitBody || c.outPaused {
			return off
		}
		k, ev, err := c.dec.Next(data[off:])
		off += k
		if err != nil {
			n.stats.protoErr.Add(1)
			if errors.Is(err, codec.ErrTooLarge) {
				h := c.dec.Header()
				err = fmt.Errorf("%w: peer sent %d bytes (header and data), MaxMessageSize is %d",
					ErrTooLarge, uint64(h.HeaderLen)+uint64(h.DataLen), n.s.maxMsg)
			} else {
				err = fmt.Errorf("%w: %v", ErrProtocol, err)
			}
			n.closeConn(c, err)
			return len(data)
		}
		switch ev {
		case codec.EventNone:
			return off
		case codec.EventHandshake:
			n.handshake(c)
		case codec.EventHeader:
			h := c.dec.Header()
			if h.Type&(codec.Ack|codec.Noop) != 0 {
				continue
			}
			s, err := c.pool.Acquire()
			if err != nil {
				// No free slot: stop reading; TCP pushes back on the peer.
				c.waitBody = true
				if !c.outPaused { // else paused already
					c.rc.PauseRead()
					n.stats.paused.Add(1)
				}
				n.stats.pauses.Add(1)
				return off
			}
			c.slot = s
		case codec.EventFrame:
			n.frame(c)
		}
	}
	return len(data)
}

func (n *Node) handshake(c *conn) {
	hs := c.dec.Handshake()
	c.peerID, c.port, c.ready = hs.Identity, hs.Port, true
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	key := netip.AddrPortFrom(c.rc.RemoteAddr().Addr(), hs.Port)
	rem := n.remoteFor(key)
	c.remote = rem
	n.touch(c)               // the remote is in use from now on (decode's touch came before it was known)
	rem.progressed(c.active) // a connection that works: a frozen peer sends no handshake
	// The connection whose handshake completed last is the current one;
	// the one it replaces stays open until idle (simultaneous connects).
	if old := rem.conn; old != nil && old != c {
		n.old[old] = struct{}{}
	}
	rem.conn = c
	delete(n.old, c)
	if df := c.dialFor; df != nil {
		df.dialing = false
		if df != rem {
			// The peer announced another port than we dialed (NAT, relay).
			// Serve the dialed remote's queue on this connection too.
			n.log.Warn("chirp: peer announced a different port than dialed", "dialed", df.key, "announced", key)
			if df.conn == nil {
				df.conn = c
			}
			df.progressed(rem.progress)
			n.process(df)
		}
	}
	n.process(rem)
}

func (n *Node) touch(c *conn) {
	now := n.now()
	c.active = now
	if c.remote != nil {
		c.remote.active = now
	}
}

func (n *Node) frame(c *conn) {
	f := c.dec.Frame()
	h := f.FrameHeader
	switch {
	case h.Type&codec.Noop != 0: // decode noted the activity
	case h.Type&codec.Ack != 0:
		for _, rem := range c.remotes() {
			if m := rem.waitAck; m != nil && m.Identity == h.Identity {
				rem.waitAck = nil
				rem.progressed(c.active) // as decode read the clock for this data
				n.stats.acksIn.Add(1)
				n.finish(m, nil)
				n.process(rem)
				return
			}
		}
		// Late ACK of a message that failed already: ignore, as libchirp.
	default:
		s := c.slot
		c.slot = nil
		if f.Buf != nil {
			s.Own(f.Buf)
		}
		m := newReceived()
		m.Identity, m.Serial, m.Header, m.Data = h.Identity, h.Serial, f.Header, f.Data
		m.Addr = netip.AddrPortFrom(c.rc.RemoteAddr().Addr(), c.port)
		m.RemoteIdentity = c.peerID
		m.ackWanted, m.slot, m.conn, m.node = h.Type&codec.ReqAck != 0, s, c, n
		m.held.Store(true)
		n.stats.msgIn.Add(1)
		n.stats.bytesIn.Add(uint64(len(f.Header) + len(f.Data)))
		n.stats.slotsInUse.Add(1)
		n.deliver(m)
		c.burst++
		if c.sinceFlush++; c.burstMax >= splitBurst && c.sinceFlush >= c.burstMax/4 && n.processing {
			c.sinceFlush = 0
			n.handOver()
			n.flushDirty()
		}
	}
}

// burstWindow is how many reads burstMax looks back over, at least: a
// connection whose reads brought fewer than half of burstMax for this many
// reads takes the most of them as its new burstMax. Reads of a steady
// pipeline vary (with 16 in flight: 4, 8, 12 or 16 messages, 16 in about
// one read of 20), so burstMax only falls when the traffic clearly did,
// say from a burst of 64 at start to 16 in flight, which otherwise would
// never be split again.
const burstWindow = 256

// endBurst notes the size of the read's burst (see splitBurst).
func (c *conn) endBurst() {
	c.burstMax = max(c.burstMax, c.burst)
	c.windowMax = max(c.windowMax, c.burst)
	if c.reads++; c.reads == burstWindow {
		if c.windowMax < c.burstMax/2 {
			c.burstMax = c.windowMax
		}
		c.reads, c.windowMax = 0, 0
	}
}

// release frees m's slot and queues the ACK if one was requested (loop).
//
// A message that is being sent (a reply made of it, say) keeps its slot,
// and its bytes, until that send finished: the release then happens.
func (n *Node) release(m *Message) {
	if m.inFlight.Load() {
		m.releaseAfterSend = true
		return
	}
	n.freeSlot(m)
	// Last: frames freeSlot decoded must not get m's struct while it is
	// still in use here.
	m.unref()
}

// freeSlot is release's work on the connection (loop).
func (n *Node) freeSlot(m *Message) {
	c := m.conn
	if i := m.slot.Index(); c.held[i] == m {
		c.held[i] = nil
	}
	n.stats.slotsInUse.Add(-1)
	if m.ackWanted {
		n.queueAck(c, m.Identity)
	}
	if _, err := c.pool.Release(m.slot); err != nil {
		n.log.Error("chirp: slot release", "err", err)
	}
	m.slot = nil
	if c.waitBody && !c.closed {
		s, err := c.pool.Acquire()
		if err != nil {
			return
		}
		c.slot, c.waitBody = s, false
		if c.outPaused {
			return // still paused: the peer does not read (checkOutput resumes)
		}
		n.stats.paused.Add(-1)
		n.readAgain(c)
	}
}

// readAgain resumes reading c after a pause ended: decrypted bytes that
// waited go first (TLS), then the reactor delivers again.
func (n *Node) readAgain(c *conn) {
	if c.closed || c.waitBody || c.outPaused {
		return
	}
	if len(c.plain) > 0 {
		if n.cork() {
			defer n.uncork()
		}
		k := n.decode(c, c.plain)
		c.plain = c.plain[:copy(c.plain, c.plain[k:])]
		if c.waitBody || c.closed || c.outPaused {
			return
		}
	}
	c.rc.ResumeRead()
}

// closeConn closes c; connClosed follows from the reactor.
func (n *Node) closeConn(c *conn, err error) {
	if c.closed {
		return
	}
	if c.rc == nil {
		return
	}
	c.rc.Close(err)
}

// connClosed cleans up after c closed for reason err (loop).
func (n *Node) connClosed(c *conn, err error) {
	if c.closed {
		return
	}
	if c.tls != nil && !c.tlsUp && c.heard && !c.peerGone && errors.Is(err, reactor.ErrPeerClosed) && c.tls.PeerClosed() {
		// The handshake goroutine may not have read all the peer sent
		// before it closed: an alert that says why, or the plaintext that
		// shows it speaks no TLS. tlsDone follows soon (the stream has
		// ended; the handshake timeout bounds it) and calls back with
		// that reason.
		c.peerGone = true
		return
	}
	c.closed = true
	delete(n.conns, c)
	delete(n.old, c)
	if c.connectTimer != nil {
		c.connectTimer.Stop()
	}
	if c.tls != nil {
		c.tls.Close()
	}
	c.plain = nil
	if c.writeTimer != nil {
		c.writeTimer.Stop()
	}
	if c.waitBody || c.outPaused {
		n.stats.paused.Add(-1)
	}
	c.ctrl = nil
	c.dec.Close()
	if c.slot != nil {
		_, _ = c.pool.Release(c.slot)
		c.slot = nil
	}
	reason := closeReason(err)
	switch {
	case !errors.Is(reason, ErrConnLost):
	case c.tls != nil && !c.tlsUp && (c.heard || c.dialFor != nil):
		// (An accepted peer that hangs up without a word is a port probe,
		// an ordinary close.)
		reason = errClosedDuringTLSHandshake
	case c.tls == nil && !c.heard && c.dialFor != nil:
		reason = errClosedBeforeHandshake
	}
	n.logClose(c, reason)
	lost := false
	for _, rem := range c.remotes() {
		if rem.conn == c {
			rem.conn = nil
			n.connLost(rem, c, reason)
			lost = true
		} else if rem == c.dialFor && !c.ready && rem.dialing {
			rem.dialing = false
			n.connLost(rem, c, reason)
			lost = true
		}
	}
	if !lost && len(c.writing) > 0 {
		w := c.writing
		c.writing = nil
		for _, m := range w {
			n.finish(m, reason)
		}
	}
}

// closeReason maps the reactor's close cause to a node error. The peer is
// not named: the send an error finishes names it, and so does the log.
func closeReason(err error) error {
	for _, s := range []error{ErrTimeout, ErrCannotConnect, ErrWrite, ErrProtocol, ErrTLS, ErrShutdown, ErrTooLarge, ErrConnLost} {
		if errors.Is(err, s) {
			return err
		}
	}
	switch {
	case errors.Is(err, reactor.ErrClosed):
		return fmt.Errorf("%w: %v", ErrShutdown, err)
	case errors.Is(err, reactor.ErrPeerClosed):
		return fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	return fmt.Errorf("%w: %v", ErrProtocol, err)
}

// logClose logs why c closed, at a level by how unusual that is: a peer
// breaking the protocol or a TLS failure is news, a peer's ordinary close,
// a timeout (its send fails with it) or a shutdown is not.
func (n *Node) logClose(c *conn, reason error) {
	level := slog.LevelDebug
	switch {
	case errors.Is(reason, ErrTLS):
		level = slog.LevelWarn
	case errors.Is(reason, ErrProtocol), errors.Is(reason, ErrTooLarge):
		level = slog.LevelInfo
	}
	n.log.Log(context.Background(), level, "chirp: connection closed", "peer", c.rc.RemoteAddr(), "err", reason)
}
