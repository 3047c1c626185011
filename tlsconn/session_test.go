package tlsconn

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
	"github.com/gochirp/chirp/tlsconn/pki"
	"go.uber.org/goleak"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func handshakeOK(t testing.TB, client, server *end) {
	t.Helper()
	if err := server.waitDone(t); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := client.waitDone(t); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
}

func TestHandshakeAndDataBothWaysTLS13(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client, server := pair(t, n.a.ClientConfig(), n.b.ServerConfig())
	handshakeOK(t, client, server)

	for _, e := range []*end{client, server} {
		var st tls.ConnectionState
		e.loop.do(t, func() { st = e.s.State() })
		if st.Version != tls.VersionTLS13 || !st.HandshakeComplete {
			t.Errorf("version %x, complete %v; want TLS 1.3 done", st.Version, st.HandshakeComplete)
		}
		if len(st.PeerCertificates) == 0 {
			t.Error("no peer certificate in the state")
		}
	}

	if err := client.writev(t, []byte("header|"), []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if got := server.waitGot(t, 12); string(got) != "header|hello" {
		t.Fatalf("server got %q", got)
	}
	if err := server.writev(t, []byte("world")); err != nil {
		t.Fatal(err)
	}
	if got := client.waitGot(t, 5); string(got) != "world" {
		t.Fatalf("client got %q", got)
	}
}

func TestOneMiBFedSevenBytesAtATime(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client, server := newEnd(t), newEnd(t)
	client.peer, server.peer = server, client
	client.chunk, server.chunk = 7, 7
	server.start(t, n.b.ServerConfig(), false, 10*time.Second)
	client.start(t, n.a.ClientConfig(), true, 10*time.Second)
	handshakeOK(t, client, server)

	up, down := randomBytes(t, 1<<20), randomBytes(t, 1<<20)
	if err := client.writev(t, up[:27], up[27:1000], up[1000:]); err != nil {
		t.Fatal(err)
	}
	if err := server.writev(t, down); err != nil {
		t.Fatal(err)
	}
	if got := server.waitGot(t, len(up)); !bytes.Equal(got, up) {
		t.Fatal("server received different bytes")
	}
	if got := client.waitGot(t, len(down)); !bytes.Equal(got, down) {
		t.Fatal("client received different bytes")
	}
}

func TestHandshakeWithRSAKeys(t *testing.T) {
	n := newNodes(t, pki.Spec{Key: pki.RSA, RSABits: 2048})
	client, server := pair(t, n.a.ClientConfig(), n.b.ServerConfig())
	handshakeOK(t, client, server)
	if err := client.writev(t, []byte("rsa")); err != nil {
		t.Fatal(err)
	}
	if got := server.waitGot(t, 3); string(got) != "rsa" {
		t.Fatalf("server got %q", got)
	}
}

func TestHandshakeTLS12(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	cfg := n.a.ClientConfig()
	cfg.MaxVersion = tls.VersionTLS12
	client, server := pair(t, cfg, n.b.ServerConfig())
	handshakeOK(t, client, server)
	var st tls.ConnectionState
	server.loop.do(t, func() { st = server.s.State() })
	if st.Version != tls.VersionTLS12 {
		t.Fatalf("version %x, want TLS 1.2", st.Version)
	}
	if err := server.writev(t, []byte("twelve")); err != nil {
		t.Fatal(err)
	}
	if got := client.waitGot(t, 6); string(got) != "twelve" {
		t.Fatalf("client got %q", got)
	}
}

// Bytes the peer sent right after its last handshake message, fed in the
// same Feed, come out after done(nil).
func TestDataWithTheLastHandshakeFlightIsDelivered(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client, server := newEnd(t), newEnd(t)
	client.peer, server.peer = server, client
	client.manual = true // the test carries the client's bytes
	server.start(t, n.b.ServerConfig(), false, 10*time.Second)
	client.onDoneWrite = []byte("first words")
	client.start(t, n.a.ClientConfig(), true, 10*time.Second)

	hello := waitSent(t, client, 1)
	server.loop.do(t, func() { server.feed(hello[0]) })
	if err := client.waitDone(t); err != nil {
		t.Fatal(err)
	}
	flight := bytes.Join(waitSent(t, client, 3)[1:], nil) // Finished flight and data
	server.loop.do(t, func() { server.feed(flight) })
	if err := server.waitDone(t); err != nil {
		t.Fatal(err)
	}
	if got := server.waitGot(t, 11); string(got) != "first words" {
		t.Fatalf("server got %q", got)
	}
	var events []string
	server.loop.do(t, func() { events = server.events })
	if strings.Join(events, ",") != "done,data" {
		t.Fatalf("server events %v, want done before data", events)
	}
}

// waitSent waits until a manual end has sent at least n chunks.
func waitSent(t *testing.T, e *end, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sent [][]byte
		e.loop.do(t, func() {
			if len(e.sent) >= n {
				sent = e.sent
			}
		})
		if sent != nil {
			return sent
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d writes", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWritevGathersSlicesIntoFewRecords(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client, server := pair(t, n.a.ClientConfig(), n.b.ServerConfig())
	handshakeOK(t, client, server)

	// Full records, and the records of one Writev in one write of up to
	// flushAt bytes (plus the record that crossed it).
	cases := []struct {
		name            string
		bufs            [][]byte
		records, writes int
	}{
		{"100 small slices", bytes.SplitAfter(bytes.Repeat([]byte("0123456789"), 100), []byte("9")), 1, 1},
		{"header and 40000 bytes", [][]byte{make([]byte, 27), make([]byte, 40000)}, 3, 1},
		{"exactly two records", [][]byte{make([]byte, 2*maxPlaintext)}, 2, 1},
		{"16 frames of 1 KiB", bytes.SplitAfter(make([]byte, 16*(32+1024)), make([]byte, 0)), 2, 1},
		{"four records", [][]byte{make([]byte, 27), make([]byte, 4*maxPlaintext-27)}, 4, 1},
		{"200 KiB", [][]byte{make([]byte, 32), make([]byte, 200<<10)}, 13, 4},
		{"nothing", [][]byte{nil, {}}, 0, 0},
	}
	total := 0
	for _, c := range cases {
		var records, writes int
		var err error
		client.loop.do(t, func() {
			r, w := client.records, client.outCalls
			err = client.s.Writev(c.bufs)
			records, writes = client.records-r, client.outCalls-w
		})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if records != c.records || writes != c.writes {
			t.Errorf("%s: %d records in %d writes, want %d in %d", c.name, records, writes, c.records, c.writes)
		}
		for _, b := range c.bufs {
			total += len(b)
		}
	}
	server.waitGot(t, total)
}

func TestServerRefusesClientWithoutCertificate(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	cfg := n.a.ClientConfig()
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &tls.Certificate{}, nil
	}
	client, server := pair(t, cfg, n.b.ServerConfig())
	err := server.waitDone(t)
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("server: %v; want ErrHandshake about the missing certificate", err)
	}
	// A TLS 1.3 client is done before the server checks it; the alert
	// fails its next Feed.
	if err := client.waitFailure(t); !errors.Is(err, ErrRecord) && !errors.Is(err, ErrHandshake) {
		t.Fatalf("client: %v; want ErrRecord or ErrHandshake", err)
	}
}

func TestServerRefusesClientOfAnotherCA(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	// The client trusts the server's CA, but its certificate is another's.
	otherCA := newCA(t, pki.Spec{})
	id := issue(t, otherCA, "stranger", pki.Spec{})
	stranger, err := Load(writePEM(t, keyPEM(t, id), pki.CertPEM(id.Cert), pki.CertPEM(otherCA.Cert), pki.CertPEM(n.ca.Cert)))
	if err != nil {
		t.Fatal(err)
	}
	client, server := pair(t, stranger.ClientConfig(), n.b.ServerConfig())
	err = server.waitDone(t)
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("server: %v; want ErrHandshake about an unknown authority", err)
	}
	if err := client.waitFailure(t); !errors.Is(err, ErrRecord) || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("client: %v; want ErrRecord with the server's bad certificate alert", err)
	}
}

func TestClientRefusesServerOfAnotherCA(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	other := newNodes(t, pki.Spec{})
	client, server := pair(t, n.a.ClientConfig(), other.b.ServerConfig())
	err := client.waitDone(t)
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("client: %v; want ErrHandshake about an unknown authority", err)
	}
	if err := server.waitDone(t); !errors.Is(err, ErrHandshake) {
		t.Fatalf("server: %v; want ErrHandshake", err)
	}
}

func TestExpiredCertificateIsRefused(t *testing.T) {
	ca := newCA(t, pki.Spec{})
	expired := pki.Spec{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}
	old := creds(t, ca, issue(t, ca, "old node", expired))
	fresh := creds(t, ca, issue(t, ca, "fresh node", pki.Spec{}))

	client, server := pair(t, old.ClientConfig(), fresh.ServerConfig())
	if err := server.waitDone(t); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("server accepting an expired client: %v", err)
	}
	client.waitFailure(t)

	client, server = pair(t, fresh.ClientConfig(), old.ServerConfig())
	if err := client.waitDone(t); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("client dialing an expired server: %v", err)
	}
	server.waitFailure(t)
}

func TestGarbageInsteadOfClientHello(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	server := newEnd(t)
	server.manual = true
	server.start(t, n.b.ServerConfig(), false, 10*time.Second)
	server.loop.do(t, func() { server.feed([]byte("GET / HTTP/1.0\r\n\r\n")) })
	err := server.waitDone(t)
	if !errors.Is(err, ErrHandshake) || !errors.Is(err, ErrNotTLS) || err.Error() != "handshake failed: peer does not speak TLS" {
		t.Fatalf("server fed plaintext: %v", err)
	}
	if err := server.writev(t, []byte("x")); !errors.Is(err, ErrHandshake) {
		t.Fatalf("Writev after a failed handshake: %v, want the handshake error", err)
	}
}

// TestPlaintextInsteadOfServerHello: a client whose peer speaks plaintext
// (a chirp node with encryption off sends its handshake at once) fails at
// the first byte, without waiting for the timeout.
func TestPlaintextInsteadOfServerHello(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client := newEnd(t)
	client.manual, client.chunk = true, 1
	client.start(t, n.a.ClientConfig(), true, time.Minute)
	chirpHandshake := append([]byte{0x0b, 0xb6}, randomBytes(t, 16)...) // port 2998, identity
	client.loop.do(t, func() { client.feed(chirpHandshake) })
	if err := client.waitDone(t); !errors.Is(err, ErrHandshake) || !errors.Is(err, ErrNotTLS) {
		t.Fatalf("client fed a plaintext chirp handshake: %v", err)
	}
	// The ClientHello went out all the same: the peer learns we want TLS.
	var sent [][]byte
	client.loop.do(t, func() { sent = client.sent })
	if len(sent) != 1 {
		t.Fatalf("client sent %d flights, want its ClientHello", len(sent))
	}
	if yes, _ := IsClientHello(sent[0]); !yes {
		t.Fatalf("client sent % x, want a ClientHello", sent[0][:min(10, len(sent[0]))])
	}
}

// TestPeerClosedLetsTheHandshakeReadWhatCameFirst: a client that refuses
// the server's certificate sends an alert and closes; the server, told of
// the close when its handshake goroutine has not read the alert yet, still
// reports the alert. Told of a close with nothing fed, it reports EOF.
func TestPeerClosedLetsTheHandshakeReadWhatCameFirst(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	other := newNodes(t, pki.Spec{})
	client, server := newEnd(t), newEnd(t)
	client.peer, server.peer = server, client
	client.manual = true // the test carries the client's flights
	server.start(t, other.b.ServerConfig(), false, 10*time.Second)
	client.start(t, n.a.ClientConfig(), true, 10*time.Second)
	flights := func() (sent [][]byte) {
		client.loop.do(t, func() { sent = client.sent; client.sent = nil })
		return sent
	}
	var hello [][]byte
	eventually(t, func() bool { hello = flights(); return len(hello) > 0 })
	server.loop.do(t, func() {
		for _, b := range hello {
			server.feed(b)
		}
	})
	if err := client.waitDone(t); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("client: %v", err)
	}
	alert := flights()
	if len(alert) == 0 {
		t.Fatal("the client sent no alert")
	}
	var waits bool
	server.loop.do(t, func() {
		for _, b := range alert {
			server.feed(b)
		}
		waits = server.s.PeerClosed()
	})
	err := server.waitDone(t)
	if !waits || !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
		t.Fatalf("server (PeerClosed %v): %v; want the client's alert", waits, err)
	}

	lone := newEnd(t)
	lone.start(t, other.b.ServerConfig(), false, 10*time.Second)
	lone.loop.do(t, func() { waits = lone.s.PeerClosed() })
	if err := lone.waitDone(t); !waits || !errors.Is(err, ErrHandshake) || !errors.Is(err, io.EOF) {
		t.Fatalf("server told of a close with nothing fed (PeerClosed %v): %v; want io.EOF", waits, err)
	}
	lone.loop.do(t, func() { waits = lone.s.PeerClosed() })
	if waits {
		t.Fatal("PeerClosed after done reports that done is still to come")
	}
}

// eventually polls cond until it holds, for up to 10 s.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
	}
}

// TestHandshakeFedOneByteAtATime: the first-record check holds its place
// across Feeds of single bytes.
func TestHandshakeFedOneByteAtATime(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client, server := newEnd(t), newEnd(t)
	client.peer, server.peer = server, client
	client.chunk, server.chunk = 1, 1
	server.start(t, n.b.ServerConfig(), false, 10*time.Second)
	client.start(t, n.a.ClientConfig(), true, 10*time.Second)
	handshakeOK(t, client, server)
	if err := client.writev(t, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got := server.waitGot(t, 5); string(got) != "hello" {
		t.Fatalf("server got %q", got)
	}
}

func TestIsClientHello(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client := newEnd(t)
	client.manual = true
	client.start(t, n.a.ClientConfig(), true, time.Minute)
	var hello []byte
	eventually(t, func() bool {
		client.loop.do(t, func() {
			if len(client.sent) > 0 {
				hello = client.sent[0]
			}
		})
		return hello != nil
	})
	if yes, more := IsClientHello(hello); !yes || more {
		t.Fatalf("Go's ClientHello: yes %v more %v", yes, more)
	}
	for k := 0; k < 10; k++ {
		if yes, more := IsClientHello(hello[:k]); yes || !more {
			t.Fatalf("first %d bytes of a ClientHello: yes %v more %v, want more", k, yes, more)
		}
	}
	identity := []byte{9, 0, 0, 1, 0, 0, 0, 3, 7, 7, 7, 7, 7, 7, 7, 7}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"chirp handshake, port 2998", append([]byte{0x0b, 0xb6}, identity...)},
		{"chirp handshake, port 5635", append([]byte{0x16, 0x03}, identity...)},
		{"chirp handshake, port 5635, identity starting 01 00 00 01 00", append([]byte{0x16, 0x03}, append([]byte{1, 0, 0, 1, 0, 0, 0, 2}, identity[8:]...)...)},
		{"HTTP", []byte("GET / HTTP/1.0\r\n\r\n")},
		{"TLS alert", []byte{0x15, 3, 3, 0, 2, 2, 40, 0, 0, 0}},
	} {
		if yes, more := IsClientHello(tc.b); yes || more {
			t.Errorf("%s: yes %v more %v", tc.name, yes, more)
		}
	}
}

func TestStalledHandshakeTimesOut(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	for _, client := range []bool{false, true} {
		e := newEnd(t)
		e.manual = true
		cfg := n.b.ServerConfig()
		if client {
			cfg = n.a.ClientConfig()
		}
		start := time.Now()
		e.start(t, cfg, client, 200*time.Millisecond)
		if !client {
			// The start of a ClientHello, then nothing.
			e.loop.do(t, func() { e.feed([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 0x01}) })
		}
		err := e.waitDone(t)
		if !errors.Is(err, ErrHandshake) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("client %v: %v; want ErrHandshake and ErrTimeout", client, err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
			t.Errorf("client %v: timed out after %v, want 200ms", client, d)
		}
	}
}

func TestCloseDuringHandshakeEndsTheGoroutine(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	e := newEnd(t)
	e.manual = true
	ignore := goleak.IgnoreCurrent()
	e.loop.do(t, func() {
		e.s = NewSession(e.loop, n.b.ServerConfig(), false, time.Minute, e.out, e.onDone)
		e.s.Close()
		if err := e.s.Feed([]byte("late"), e.deliver); !errors.Is(err, ErrClosed) {
			t.Errorf("Feed after Close: %v, want ErrClosed", err)
		}
		if err := e.s.Writev([][]byte{[]byte("late")}); !errors.Is(err, ErrClosed) {
			t.Errorf("Writev after Close: %v, want ErrClosed", err)
		}
		e.s.Close()
	})
	goleak.VerifyNone(t, append(leakcheck.Options(), ignore)...)
	e.loop.do(t, func() {}) // let a queued finish run
	select {
	case err := <-e.done:
		t.Fatalf("done(%v) called after Close", err)
	default:
	}
}

func TestWritevBeforeHandshakeIsNotReady(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	e := newEnd(t)
	e.manual = true
	e.start(t, n.a.ClientConfig(), true, time.Minute)
	if err := e.writev(t, []byte("too early")); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Writev during the handshake: %v, want ErrNotReady", err)
	}
	var st tls.ConnectionState
	e.loop.do(t, func() { st = e.s.State() })
	if st.HandshakeComplete {
		t.Fatal("State during the handshake reports it complete")
	}
}

func TestCorruptRecordFailsFeed(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	client, server := pair(t, n.a.ClientConfig(), n.b.ServerConfig())
	handshakeOK(t, client, server)

	var rec []byte
	client.loop.do(t, func() {
		client.manual = true
		if err := client.s.Writev([][]byte{[]byte("precious")}); err != nil {
			t.Error(err)
		}
		rec = client.sent[len(client.sent)-1]
	})
	rec[len(rec)-1] ^= 1
	var err error
	server.loop.do(t, func() { err = server.s.Feed(rec, server.deliver) })
	if !errors.Is(err, ErrRecord) {
		t.Fatalf("Feed of a corrupt record: %v, want ErrRecord", err)
	}
	server.loop.do(t, func() {
		if err2 := server.s.Feed(nil, server.deliver); err2 != err {
			t.Errorf("Feed after a failure: %v, want the same error", err2)
		}
		if len(server.got) != 0 {
			t.Errorf("corrupt record delivered %q", server.got)
		}
	})
}

func BenchmarkSessionPair1KiB(b *testing.B) {
	n := newNodes(b, pki.Spec{})
	client, server := pair(b, n.a.ClientConfig(), n.b.ServerConfig())
	handshakeOK(b, client, server)
	// From here on the benchmark is the loop of both ends.
	client.loop.do(b, func() { client.direct = true })
	server.loop.do(b, func() { server.got = nil })
	received := 0
	server.onData = func(p []byte) { received += len(p) }
	header, data := make([]byte, 27), make([]byte, 1024)
	bufs := [][]byte{header, data}
	b.SetBytes(int64(len(header) + len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := client.s.Writev(bufs); err != nil {
			b.Fatal(err)
		}
		server.got = server.got[:0]
	}
	b.StopTimer()
	if received != b.N*(len(header)+len(data)) {
		b.Fatalf("received %d bytes, want %d", received, b.N*(len(header)+len(data)))
	}
}
