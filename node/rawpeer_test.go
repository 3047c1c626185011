package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochirp/chirp/codec"
)

// rawPeer plays a C libchirp node over a plain socket, writing the byte
// layouts of codec/testdata/wire: an 18-byte handshake in one write,
// then one write per frame, with a per-connection serial that starts at a
// random value and grows by one per frame.
type rawPeer struct {
	t      testing.TB
	conn   net.Conn
	ln     net.Listener // holds the port the peer announces
	id     codec.Identity
	port   uint16
	serial uint32
}

// rawIOTimeout bounds every read and write of a raw peer.
const rawIOTimeout = 5 * time.Second

// connectRaw opens a TCP connection to n on 127.0.0.1 without sending
// anything. The peer holds a listener on the port it will announce, so a
// node that dials that port back reaches something harmless.
func connectRaw(t testing.TB, n *Node) *rawPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	c, err := net.DialTimeout("tcp", addr(n), rawIOTimeout)
	if err != nil {
		ln.Close()
		t.Fatalf("dial %s: %v", addr(n), err)
	}
	p := &rawPeer{t: t, conn: c, ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	_, _ = rand.Read(p.id[:])
	var s [4]byte
	_, _ = rand.Read(s[:])
	p.serial = (uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])) >> 1 // < 2^31, as C's rand()
	t.Cleanup(func() {
		c.Close()
		ln.Close()
	})
	return p
}

// dialRawPeer connects to n and sends the peer's handshake.
func dialRawPeer(t testing.TB, n *Node) *rawPeer {
	t.Helper()
	p := connectRaw(t, n)
	p.sendHandshake()
	return p
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	_ = p.conn.SetWriteDeadline(time.Now().Add(rawIOTimeout))
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw peer write: %v", err)
	}
}

// sendHandshake writes the 18 handshake bytes in one write, as libchirp
// requires (docs/protocol.md §1.1).
func (p *rawPeer) sendHandshake() {
	p.t.Helper()
	p.write(codec.Handshake{Port: p.port, Identity: p.id}.Append(nil))
}

// frame encodes one frame with the peer's next serial.
func (p *rawPeer) frame(typ codec.Type, id codec.Identity, header, data []byte) []byte {
	p.serial++
	h := codec.FrameHeader{Identity: id, Serial: p.serial, DataLen: uint32(len(data)),
		HeaderLen: uint16(len(header)), Type: typ}
	b := h.Append(nil)
	b = append(b, header...)
	return append(b, data...)
}

// send writes one frame in one write.
func (p *rawPeer) send(typ codec.Type, id codec.Identity, header, data []byte) {
	p.t.Helper()
	p.write(p.frame(typ, id, header, data))
}

// sendRawHeader writes a frame header with arbitrary lengths and no body.
func (p *rawPeer) sendRawHeader(h codec.FrameHeader) {
	p.t.Helper()
	p.serial++
	h.Serial = p.serial
	p.write(h.Append(nil))
}

func (p *rawPeer) readFull(b []byte) {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(rawIOTimeout))
	if _, err := io.ReadFull(p.conn, b); err != nil {
		p.t.Fatalf("raw peer read %d bytes: %v", len(b), err)
	}
}

// expectHandshake reads the node's handshake and checks it announces the
// node's port and identity.
func (p *rawPeer) expectHandshake(n *Node) {
	p.t.Helper()
	var b [codec.HandshakeSize]byte
	p.readFull(b[:])
	want := codec.Handshake{Port: uint16(n.Port()), Identity: n.Identity()}.Append(nil)
	if !bytes.Equal(b[:], want) {
		hs, _ := codec.ParseHandshake(b[:])
		p.t.Fatalf("node handshake % x (port %d identity %v), want % x (port %d identity %v)",
			b, hs.Port, hs.Identity, want, n.Port(), n.Identity())
	}
}

// rawFrame is a frame the node wrote.
type rawFrame struct {
	codec.FrameHeader
	Header, Data []byte
	Wire         []byte // the frame's bytes as written by the node
}

// readFrame reads the next frame the node wrote.
func (p *rawPeer) readFrame() rawFrame {
	p.t.Helper()
	var b [codec.FrameHeaderSize]byte
	p.readFull(b[:])
	h, _ := codec.ParseFrameHeader(b[:])
	wire := make([]byte, codec.FrameHeaderSize+h.BodyLen())
	copy(wire, b[:])
	body := wire[codec.FrameHeaderSize:]
	p.readFull(body)
	return rawFrame{FrameHeader: h, Header: body[:h.HeaderLen], Data: body[h.HeaderLen:], Wire: wire}
}

// expectSilence checks that the node writes nothing for d.
func (p *rawPeer) expectSilence(d time.Duration) {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	k, err := p.conn.Read(b[:])
	var ne net.Error
	if k > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		p.t.Fatalf("expected no bytes for %v, got %d bytes, err %v", d, k, err)
	}
}

// expectClosed reads (and drops) whatever the node still sends until EOF or
// a reset, and fails if the connection is still open after within.
func (p *rawPeer) expectClosed(within time.Duration) {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 4096)
	for {
		_, err := p.conn.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p.t.Fatalf("connection still open after %v", within)
		}
		return // io.EOF or ECONNRESET
	}
}

// exchange sends one asynchronous message (type 0) to an echoing node and
// checks that the echo comes back with the same identity and bytes.
func (p *rawPeer) exchange(header, data []byte) rawFrame {
	p.t.Helper()
	var id codec.Identity
	_, _ = rand.Read(id[:])
	p.send(0, id, header, data)
	f := p.readFrame()
	if f.Identity != id || !bytes.Equal(f.Header, header) || !bytes.Equal(f.Data, data) {
		p.t.Fatalf("echo id %v header %q data %d bytes, want %v %q %d bytes", f.Identity, f.Header, len(f.Data), id, header, len(data))
	}
	return f
}

// echoRecorder is a handler that sends every message back where it came
// from and records the outcome of each echo.
type echoRecorder struct {
	n    atomic.Pointer[Node]
	mu   sync.Mutex
	errs []error
	done chan error // one per echo
}

func newEchoRecorder() *echoRecorder { return &echoRecorder{done: make(chan error, 64)} }

func (e *echoRecorder) ServeChirp(m *Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := e.n.Load().Send(ctx, m)
	e.mu.Lock()
	e.errs = append(e.errs, err)
	e.mu.Unlock()
	e.done <- err
}

// waitEcho returns the outcome of the next echo send.
func (e *echoRecorder) waitEcho(t testing.TB) error {
	t.Helper()
	select {
	case err := <-e.done:
		return err
	case <-time.After(rawIOTimeout):
		t.Fatal("echo send did not finish")
		return nil
	}
}

// startEchoNode starts a node whose handler is an echoRecorder.
func startEchoNode(t testing.TB, cfg Config) (*Node, *echoRecorder) {
	t.Helper()
	e := newEchoRecorder()
	cfg.Handler = e
	n := startNode(t, cfg)
	e.n.Store(n)
	return n, e
}

// eventually polls cond every few milliseconds until it holds or within
// passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
