// Package tlsconn runs TLS for connections of an event loop, with Go's
// crypto/tls, and reads libchirp's credentials and encryption rule. It knows
// sockets' bytes (ciphertext in, plaintext out, and back) and nothing of
// chirp frames, remotes or the loop's connection type.
//
// # Sessions on an event loop
//
// crypto/tls wants a blocking net.Conn; an event loop hands out bytes when
// they arrive and must never block. A Session bridges the two with an
// in-memory transport under a tls.Conn:
//
//   - The handshake runs in a short-lived goroutine whose reads block on the
//     transport until the loop feeds ciphertext (Feed) and whose writes are
//     handed to the loop (Loop.Submit) to go out through the out function.
//     The handshake cannot run on the loop: crypto/tls keeps a handshake
//     error for good, so it cannot be resumed when more bytes come.
//   - Once the handshake is done, the loop uses the tls.Conn directly.
//     Feed decrypts what it was given without blocking: the transport
//     returns the fed bytes and then a temporary net.Error, on which
//     crypto/tls keeps a partial record for the next Feed. Writev encrypts
//     into the out function on the loop.
//
// All methods of Session run on the loop; only NewSession may also be
// called from elsewhere. No close_notify is ever sent, as in libchirp.
package tlsconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Loop is what a Session needs from an event loop: running a closure on
// it. Closures submitted from one goroutine must run in the order they were
// submitted. reactor.Reactor is a Loop.
type Loop interface {
	Submit(f func()) error
}

// maxPlaintext is the largest plaintext a TLS record carries.
const maxPlaintext = 16 << 10

// bufPool holds the record-sized buffers Feed decrypts into and Writev
// gathers in, so an idle session holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, maxPlaintext); return &b }}

// flushAt is how much ciphertext Writev collects before it hands it to out:
// records of one Writev leave in one write (one system call, one TCP
// segment on loopback) instead of one each, up to this much.
const flushAt = 64 << 10

// cipherPool holds the buffers Writev collects ciphertext in.
var cipherPool = sync.Pool{New: func() any { b := make([]byte, 0, flushAt+maxPlaintext+256); return &b }}

// state is where a Session is in its life. Only the loop reads and writes it.
type state uint8

const (
	// stateHandshake: the goroutine runs the handshake; fed bytes go to it.
	stateHandshake state = iota
	// stateReady: the handshake succeeded; the loop reads and writes the
	// tls.Conn itself.
	stateReady
	// stateFailed: the handshake, a record or a write failed; err says why.
	stateFailed
	// stateClosed: Close was called.
	stateClosed
)

// Session runs TLS over bytes the loop feeds in, writing ciphertext through
// out. Create it with NewSession.
type Session struct {
	loop    Loop
	out     func(ciphertext []byte) error
	done    func(err error)
	timeout time.Duration
	conn    *tls.Conn
	tr      *transport
	timer   *time.Timer // handshake timeout; nil without one

	// Loop-owned.
	seen       int   // bytes fed so far, counted up to 2 (for the first record's check)
	notTLS     error // the peer's first bytes were no TLS record
	state      state
	handshaken bool  // the tls.Conn finished its handshake: State may ask it
	err        error // the failure, in stateFailed
	// deliver is the function of the latest Feed during the handshake; it
	// gets plaintext that arrived together with the end of the handshake.
	deliver func(plaintext []byte)
}

// NewSession starts a TLS handshake in the client or server role, in a
// goroutine of its own, and returns at once.
//
// out is called on the loop with ciphertext to write to the socket; it must
// write or copy it before returning. An error from out fails the session.
//
// done is called on the loop exactly once, unless Close comes first: with
// nil when the handshake succeeded, or with an error that wraps
// ErrHandshake and the reason: also ErrTimeout if it did not finish within
// timeout (<= 0 means no limit), also ErrNotTLS if the peer's first bytes
// were no TLS record (see Feed), also ErrRecord if records that came with
// the end of the handshake were bad. Plaintext that arrived together
// with the end of the handshake is passed, right after done(nil) returns, to
// the deliver function of the latest Feed.
//
// A TLS 1.3 client finishes its handshake before the server has checked the
// client certificate; a server that refuses it says so with an alert that
// makes the client's next Feed fail with ErrRecord.
//
// If the loop refuses closures (it is closing), neither out nor done is
// called again and the goroutine ends.
func NewSession(loop Loop, cfg *tls.Config, client bool, timeout time.Duration,
	out func(ciphertext []byte) error, done func(err error)) *Session {
	s := &Session{loop: loop, out: out, done: done, timeout: timeout}
	s.tr = &transport{s: s}
	s.tr.cond.L = &s.tr.mu
	if client {
		s.conn = tls.Client(s.tr, cfg)
	} else {
		s.conn = tls.Server(s.tr, cfg)
	}
	if timeout > 0 {
		s.timer = time.AfterFunc(timeout, func() { s.tr.fail(errHandshakeTimeout) })
	}
	go s.handshake()
	return s
}

// handshake runs in the session's goroutine. Its last act is handing the
// result to the loop, so everything it did happens before finish runs.
func (s *Session) handshake() {
	err := s.conn.Handshake()
	if s.loop.Submit(func() { s.finish(err) }) != nil && s.timer != nil {
		s.timer.Stop() // the loop is gone; finish never runs
	}
}

// finish runs on the loop when the handshake goroutine has ended.
func (s *Session) finish(err error) {
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.state != stateHandshake {
		return // closed meanwhile
	}
	s.tr.onLoop = true
	if err != nil {
		switch {
		case s.notTLS != nil:
			err = s.notTLS
		case s.tr.reason() == errHandshakeTimeout:
			err = fmt.Errorf("%w: %w: no handshake within %v", ErrHandshake, ErrTimeout, s.timeout)
		default:
			err = fmt.Errorf("%w: %w", ErrHandshake, err)
		}
		s.fail(err)
		s.done(err)
		return
	}
	s.state = stateReady
	s.handshaken = true

	// The peer may have sent records right after its last handshake message
	// (a TLS 1.3 client its first data, a server its session tickets). They
	// are already fed, and the loop may not feed more for a long time.
	var early []byte
	if err := s.read(func(p []byte) { early = append(early, p...) }); err != nil {
		err = fmt.Errorf("%w: %w", ErrHandshake, err)
		s.done(err)
		return
	}
	deliver := s.deliver
	s.deliver = nil
	s.done(nil)
	if len(early) > 0 && s.state == stateReady && deliver != nil {
		deliver(early)
	}
}

// Feed takes ciphertext that arrived from the peer; the session does not
// keep the slice. During the handshake the bytes go to the handshake
// goroutine. After it, Feed decrypts them and passes the plaintext to
// deliver, in zero or more calls, each slice valid only during its call.
// deliver must not be nil; it may call Writev and Close but not Feed. A partial record is kept
// for the next Feed.
//
// During the handshake, first bytes that cannot start a TLS record (a peer
// speaking plaintext) fail it at once, where crypto/tls would guess at a
// broken record or wait for more bytes: done follows with an error
// wrapping ErrHandshake and ErrNotTLS. A client's first flight still goes
// out, so that the plaintext peer sees a ClientHello and can tell its user
// that this end expects TLS.
//
// A record that does not decrypt, or an alert from the peer, fails the
// session with an error wrapping ErrRecord; a close_notify from the peer
// with one wrapping io.EOF. After a failure Feed returns that error, after
// Close ErrClosed.
func (s *Session) Feed(ciphertext []byte, deliver func(plaintext []byte)) error {
	switch s.state {
	case stateHandshake:
		s.deliver = deliver
		if s.notTLS != nil {
			return nil // the handshake is ending; the bytes are no TLS
		}
		if !s.firstRecord(ciphertext) {
			s.notTLS = fmt.Errorf("%w: %w", ErrHandshake, ErrNotTLS)
			s.tr.failReads(s.notTLS) // the handshake ends; finish reports it
			return nil
		}
		s.tr.push(ciphertext)
		return nil
	case stateReady:
		s.tr.src = ciphertext
		err := s.read(deliver)
		s.tr.src = nil
		return err
	case stateFailed:
		return s.err
	}
	return ErrClosed
}

// firstRecord checks the first two bytes the peer sends, as they come: the
// first record of a TLS peer, client or server, is a handshake (0x16) or an
// alert (0x15) with major version 3. A chirp handshake in plaintext starts
// with the port, which matches only for ports 5379 and 5635; crypto/tls
// then fails on what follows.
func (s *Session) firstRecord(b []byte) bool {
	for ; s.seen < 2 && len(b) > 0; b = b[1:] {
		switch c := b[0]; {
		case s.seen == 0 && c != recordAlert && c != recordHandshake,
			s.seen == 1 && c != 3:
			return false
		}
		s.seen++
	}
	return true
}

// read decrypts every complete record the transport has, on the loop.
func (s *Session) read(deliver func([]byte)) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for s.state == stateReady {
		n, err := s.conn.Read(*bp)
		if n > 0 {
			deliver((*bp)[:n])
		}
		switch {
		case err == nil:
		case err == errWouldBlock:
			return nil
		case errors.Is(err, io.EOF):
			return s.fail(fmt.Errorf("peer closed the TLS session: %w", err))
		default:
			return s.fail(fmt.Errorf("%w: %w", ErrRecord, err))
		}
	}
	return nil
}

// Writev encrypts the slices in order and writes the ciphertext through out,
// on the loop. Small slices are gathered so that they share records; a
// record carries up to 16 KiB, and the records of one call go to out
// together, in as few calls as 64 KiB chunks allow. The caller may reuse
// the slices when Writev returns. Before the handshake finished it returns
// ErrNotReady.
func (s *Session) Writev(bufs [][]byte) error {
	switch s.state {
	case stateHandshake:
		return ErrNotReady
	case stateFailed:
		return s.err
	case stateClosed:
		return ErrClosed
	}
	cp := cipherPool.Get().(*[]byte)
	s.tr.collect = (*cp)[:0]
	err := s.seal(bufs)
	if err == nil {
		err = s.tr.flush()
	}
	*cp, s.tr.collect = s.tr.collect[:0], nil // ciphertext only: nothing secret stays in the pool
	if cap(*cp) <= 2*flushAt {
		cipherPool.Put(cp)
	}
	if err != nil {
		return s.fail(fmt.Errorf("writing TLS records: %w", err))
	}
	return nil
}

// seal encrypts bufs into records; the transport collects the ciphertext.
func (s *Session) seal(bufs [][]byte) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	g := (*bp)[:0]
	for _, b := range bufs {
		for len(b) > 0 {
			if len(g) == 0 && len(b) >= maxPlaintext {
				// Whole records straight from the caller's slice.
				k := len(b) - len(b)%maxPlaintext
				if err := s.write(b[:k]); err != nil {
					return err
				}
				b = b[k:]
				continue
			}
			n := copy(g[len(g):cap(g)], b)
			g, b = g[:len(g)+n], b[n:]
			if len(g) == cap(g) {
				if err := s.write(g); err != nil {
					return err
				}
				g = g[:0]
			}
		}
	}
	if len(g) > 0 {
		return s.write(g)
	}
	return nil
}

func (s *Session) write(p []byte) error {
	_, err := s.conn.Write(p)
	return err
}

// fail records the session's failure and returns err.
func (s *Session) fail(err error) error {
	s.state, s.err = stateFailed, err
	return err
}

// Close releases the session on the loop. A running handshake goroutine is
// told to stop and ends soon; done is not called. Nothing is sent to the
// peer. Closing twice is harmless.
func (s *Session) Close() {
	if s.state == stateClosed {
		return
	}
	s.state = stateClosed
	s.deliver = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.tr.fail(ErrClosed)
}

// PeerClosed tells the session that the peer closed the connection. If the
// handshake is still running, its goroutine reads what was fed before the
// close (an alert that says why the peer gave up, say), then sees the end
// of the stream, and done follows as usual: with the peer's reason, or
// with an error wrapping io.EOF. PeerClosed reports whether done is still
// to come.
func (s *Session) PeerClosed() bool {
	if s.state != stateHandshake {
		return false
	}
	s.tr.peerClosed()
	return true
}

// State is the TLS connection state (version, cipher suite, peer
// certificates) once the handshake succeeded, and the zero value before.
func (s *Session) State() tls.ConnectionState {
	if !s.handshaken {
		return tls.ConnectionState{}
	}
	return s.conn.ConnectionState()
}
