package tlsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
	"github.com/gochirp/chirp/tlsconn/pki"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// ---- certificates ----

func newCA(t testing.TB, spec pki.Spec) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA", spec)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t testing.TB, ca *pki.CA, name string, spec pki.Spec) *pki.Identity {
	t.Helper()
	id, err := ca.Issue(name, spec)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// writePEM writes the concatenated blocks to a new file and returns its path.
func writePEM(t testing.TB, blocks ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(path, bytes.Join(blocks, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func keyPEM(t testing.TB, id *pki.Identity) []byte {
	t.Helper()
	b, err := pki.KeyPEM(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// creds loads a node's credentials from a file in libchirp's layout.
func creds(t testing.TB, ca *pki.CA, id *pki.Identity) *Credentials {
	t.Helper()
	c, err := Load(writePEM(t, keyPEM(t, id), pki.CertPEM(id.Cert), pki.CertPEM(ca.Cert)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nodes is a CA with two nodes of the same kind of key.
type nodes struct {
	ca   *pki.CA
	a, b *Credentials
}

func newNodes(t testing.TB, spec pki.Spec) nodes {
	ca := newCA(t, spec)
	return nodes{
		ca: ca,
		a:  creds(t, ca, issue(t, ca, "node a", spec)),
		b:  creds(t, ca, issue(t, ca, "node b", spec)),
	}
}

// ---- a loop ----

var errLoopClosed = errors.New("fake loop closed")

// fakeLoop runs submitted closures one at a time, in order, on one goroutine.
type fakeLoop struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []func()
	closed  bool
	stopped chan struct{}
}

func newLoop(t testing.TB) *fakeLoop {
	l := &fakeLoop{stopped: make(chan struct{})}
	l.cond.L = &l.mu
	go l.run()
	t.Cleanup(l.stop)
	return l
}

func (l *fakeLoop) Submit(f func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errLoopClosed
	}
	l.queue = append(l.queue, f)
	l.cond.Signal()
	return nil
}

func (l *fakeLoop) run() {
	defer close(l.stopped)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.cond.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		f := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.mu.Unlock()
		f()
	}
}

// stop runs what was submitted, refuses more and waits for the goroutine.
func (l *fakeLoop) stop() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
	<-l.stopped
}

// do runs f on the loop and waits for it.
func (l *fakeLoop) do(t testing.TB, f func()) {
	t.Helper()
	ran := make(chan struct{})
	if err := l.Submit(func() { f(); close(ran) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		t.Fatal("loop did not run the closure")
	}
}

// ---- a session on a loop ----

// end is one side of a connection: a Session on its own loop whose
// ciphertext goes to its peer's loop, as between two processes.
type end struct {
	loop  *fakeLoop
	s     *Session
	peer  *end
	sock  net.Conn // instead of peer: out writes here, a reader feeds from it
	chunk int      // feed the session this many bytes at a time; 0: as sent

	// Loop-owned.
	manual   bool     // out keeps the ciphertext in sent instead of forwarding it
	direct   bool     // out feeds the peer synchronously (benchmark)
	sent     [][]byte // with manual
	outCalls int
	records  int      // TLS records in what out was given
	got      []byte   // plaintext received
	events   []string // "done" and "data", in order
	onData   func(p []byte)
	// onDoneWrite is written as soon as the handshake succeeded.
	onDoneWrite []byte

	done      chan error     // done's results
	feedErr   chan error     // the first Feed error
	deliverFn func(p []byte) // e.deliver, made once: a method value allocates
}

func newEnd(t testing.TB) *end {
	e := &end{loop: newLoop(t), done: make(chan error, 4), feedErr: make(chan error, 1)}
	e.deliverFn = e.deliver
	return e
}

// start begins the handshake on the end's loop; a socket end then starts
// reading its socket.
func (e *end) start(t testing.TB, cfg *tls.Config, client bool, timeout time.Duration) {
	t.Helper()
	e.loop.do(t, func() { e.s = NewSession(e.loop, cfg, client, timeout, e.out, e.onDone) })
	t.Cleanup(func() { e.loop.do(t, e.s.Close) })
	if e.sock != nil {
		e.readSocket(t)
	}
}

func (e *end) onDone(err error) {
	e.events = append(e.events, "done")
	if err == nil && e.onDoneWrite != nil {
		if werr := e.s.Writev([][]byte{e.onDoneWrite}); werr != nil {
			err = werr
		}
	}
	e.done <- err
}

func (e *end) out(b []byte) error {
	e.outCalls++
	for r := b; len(r) >= 5; { // out gets whole records: count them
		e.records++
		r = r[min(len(r), 5+(int(r[3])<<8|int(r[4]))):]
	}
	switch {
	case e.manual:
		e.sent = append(e.sent, bytes.Clone(b))
		return nil
	case e.direct:
		e.peer.feed(b)
		return nil
	case e.sock != nil:
		_, err := e.sock.Write(b)
		return err
	}
	cp := bytes.Clone(b)
	return e.peer.loop.Submit(func() { e.peer.feed(cp) })
}

// feed gives b to the session, chunk bytes at a time (on the loop).
func (e *end) feed(b []byte) {
	for len(b) > 0 {
		n := len(b)
		if e.chunk > 0 {
			n = min(n, e.chunk)
		}
		if err := e.s.Feed(b[:n], e.deliverFn); err != nil {
			select {
			case e.feedErr <- err:
			default:
			}
			return
		}
		b = b[n:]
	}
}

func (e *end) deliver(p []byte) {
	if len(e.events) == 0 || e.events[len(e.events)-1] != "data" {
		e.events = append(e.events, "data")
	}
	e.got = append(e.got, p...)
	if e.onData != nil {
		e.onData(p)
	}
}

// pair connects a client and a server session back to back.
func pair(t testing.TB, clientCfg, serverCfg *tls.Config) (client, server *end) {
	client, server = newEnd(t), newEnd(t)
	client.peer, server.peer = server, client
	server.start(t, serverCfg, false, 10*time.Second)
	client.start(t, clientCfg, true, 10*time.Second)
	return client, server
}

// waitDone returns the error done was called with.
func (e *end) waitDone(t testing.TB) error {
	t.Helper()
	select {
	case err := <-e.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("done was not called")
		return nil
	}
}

// waitFailure returns the first error of the end: from done or from a Feed.
func (e *end) waitFailure(t testing.TB) error {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case err := <-e.done:
			if err != nil {
				return err
			}
		case err := <-e.feedErr:
			return err
		case <-deadline:
			t.Fatal("no failure reported")
			return nil
		}
	}
}

// waitGot waits until the end received n plaintext bytes and returns them.
func (e *end) waitGot(t testing.TB, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []byte
		e.loop.do(t, func() {
			if len(e.got) >= n {
				got = e.got
			}
		})
		if got != nil {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received fewer than %d bytes in time", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// writev calls Writev on the end's loop.
func (e *end) writev(t testing.TB, bufs ...[]byte) error {
	t.Helper()
	var err error
	e.loop.do(t, func() { err = e.s.Writev(bufs) })
	return err
}

// sockEnd is an end whose ciphertext travels over the TCP connection nc,
// feeding the session chunk bytes at a time.
func sockEnd(t testing.TB, nc net.Conn, chunk int) *end {
	e := newEnd(t)
	e.sock, e.chunk = nc, chunk
	return e
}

// readSocket feeds what arrives on the socket to the session until the
// socket fails or is closed by the test's cleanup.
func (e *end) readSocket(t testing.TB) {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 64<<10)
		for {
			n, err := e.sock.Read(buf)
			if n > 0 {
				cp := bytes.Clone(buf[:n])
				if e.loop.Submit(func() { e.feed(cp) }) != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { e.sock.Close(); <-stopped })
}
