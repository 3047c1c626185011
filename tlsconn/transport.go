package tlsconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// transport is the net.Conn under a Session's tls.Conn. It has two modes.
// During the handshake (onLoop false) the handshake goroutine calls Read,
// which blocks until the loop pushes bytes or the session ends, and Write,
// which hands a copy of the bytes to the loop. After it (onLoop true) only
// the loop calls Read and Write: Read returns what the loop fed and then
// errWouldBlock, Write calls out directly.
type transport struct {
	s *Session

	mu   sync.Mutex
	cond sync.Cond // signalled when in grows or err is set
	in   []byte    // fed ciphertext not read yet, from off on
	off  int
	err  error // ends the handshake goroutine's reads and writes
	rerr error // ends its reads only: the first flight still goes out
	eof  bool  // the peer closed: reads return io.EOF once in is read

	// Loop-owned. onLoop is set by the loop after the handshake goroutine
	// ended, which makes the handshake's use of in happen before.
	onLoop bool
	src    []byte // the ciphertext of the Feed in progress
	// collect, during Writev, gathers the records crypto/tls writes (it
	// reuses its own buffer for each), to go to out together; nil outside.
	collect []byte
}

// errHandshakeTimeout is what the timeout makes the handshake's reads fail
// with; finish turns it into ErrTimeout.
var errHandshakeTimeout = errors.New("handshake timed out")

// wouldBlock is the error Read returns on the loop when all fed bytes were
// read. crypto/tls keeps a partial record on a temporary net.Error and
// returns the error, where any other error would break the connection.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsconn: all fed ciphertext consumed" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

// push appends ciphertext for the handshake goroutine (on the loop).
func (t *transport) push(b []byte) {
	if len(b) == 0 {
		return
	}
	t.mu.Lock()
	t.in = append(t.in, b...)
	t.mu.Unlock()
	t.cond.Signal()
}

// fail makes the handshake goroutine's reads and writes return err, unless
// an error was set before. Any goroutine may call it.
func (t *transport) fail(err error) {
	t.mu.Lock()
	if t.err == nil {
		t.err = err
	}
	t.mu.Unlock()
	t.cond.Broadcast()
}

// peerClosed makes the handshake goroutine's reads return io.EOF once they
// took everything fed.
func (t *transport) peerClosed() {
	t.mu.Lock()
	t.eof = true
	t.mu.Unlock()
	t.cond.Broadcast()
}

// failReads makes the handshake goroutine's reads return err; its writes go
// on (on the loop).
func (t *transport) failReads(err error) {
	t.mu.Lock()
	t.rerr = err
	t.mu.Unlock()
	t.cond.Broadcast()
}

func (t *transport) reason() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *transport) Read(p []byte) (int, error) {
	if t.onLoop {
		if t.off < len(t.in) { // left over from the handshake
			n := copy(p, t.in[t.off:])
			t.off += n
			if t.off == len(t.in) {
				t.in, t.off = nil, 0
			}
			return n, nil
		}
		if len(t.src) == 0 {
			return 0, errWouldBlock
		}
		n := copy(p, t.src)
		t.src = t.src[n:]
		return n, nil
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	for t.off == len(t.in) && t.err == nil && t.rerr == nil && !t.eof {
		t.cond.Wait()
	}
	if t.err != nil {
		return 0, t.err
	}
	if t.rerr != nil {
		return 0, t.rerr
	}
	if t.off == len(t.in) { // and eof
		return 0, io.EOF
	}
	n := copy(p, t.in[t.off:])
	t.off += n
	if t.off == len(t.in) {
		t.in, t.off = t.in[:0], 0
	}
	return n, nil
}

func (t *transport) Write(p []byte) (int, error) {
	if t.onLoop {
		if t.collect != nil {
			t.collect = append(t.collect, p...)
			if len(t.collect) >= flushAt {
				if err := t.flush(); err != nil {
					return 0, err
				}
			}
			return len(p), nil
		}
		if err := t.s.out(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}

	if err := t.reason(); err != nil {
		return 0, err
	}
	b := bytes.Clone(p)
	if err := t.s.loop.Submit(func() { t.s.sendHandshake(b) }); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush hands the collected ciphertext to out (on the loop).
func (t *transport) flush() error {
	if len(t.collect) == 0 {
		return nil
	}
	err := t.s.out(t.collect)
	t.collect = t.collect[:0]
	return err
}

// sendHandshake writes a flight of the handshake, on the loop.
func (s *Session) sendHandshake(b []byte) {
	if s.state != stateHandshake {
		return
	}
	if err := s.out(b); err != nil {
		s.tr.fail(err)
	}
}

// Close does nothing: the session decides when the transport ends, and
// crypto/tls only calls Close from tls.Conn.Close, which sessions never use.
func (t *transport) Close() error { return nil }

func (t *transport) LocalAddr() net.Addr              { return memAddr{} }
func (t *transport) RemoteAddr() net.Addr             { return memAddr{} }
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

// memAddr is the address of the in-memory transport.
type memAddr struct{}

func (memAddr) Network() string { return "tlsconn" }
func (memAddr) String() string  { return "tlsconn" }
