package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/codec"
)

// logRecord is one line a node logged.
type logRecord struct {
	level          slog.Level
	msg, peer, err string
}

// logRecorder is a slog.Handler that keeps what a node logs, for tests of
// the words and the level.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRecord
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := logRecord{level: rec.Level, msg: rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "peer":
			lr.peer = a.Value.String()
		case "err":
			lr.err = a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, lr)
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) records() []logRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]logRecord(nil), r.recs...)
}

// waitFor returns the first record with message msg, waiting for it.
func (r *logRecorder) waitFor(t testing.TB, msg string) logRecord {
	t.Helper()
	var found logRecord
	eventually(t, 5*time.Second, "log line "+msg, func() bool {
		for _, rec := range r.records() {
			if rec.msg == msg {
				found = rec
				return true
			}
		}
		return false
	})
	return found
}

// logged gives cfg a logRecorder.
func logged(cfg Config) (Config, *logRecorder) {
	rec := &logRecorder{}
	cfg.Logger = slog.New(rec)
	return cfg, rec
}

// on127002 makes cfg listen (and dial from) 127.0.0.2 only, an address
// that needs TLS by libchirp's rule.
func on127002(cfg Config) Config {
	cfg.BindV4 = netip.MustParseAddr("127.0.0.2")
	cfg.DisableV6 = true
	return cfg
}

// closedPort is a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

// hangUpPeer listens on 127.0.0.1, and for one connection sends a chirp
// handshake, reads the node's handshake and a 1-byte message, and closes:
// a peer that goes away while the message waits for its ACK.
func hangUpPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(rawIOTimeout))
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		_, _ = c.Write(codec.Handshake{Port: port, Identity: randomIdentity()}.Append(nil))
		// All of it: unread bytes would make the close a reset.
		_, _ = io.ReadFull(c, make([]byte, codec.HandshakeSize+codec.FrameHeaderSize+1))
	}()
	return ln.Addr().String()
}

// TestErrorTextNamesTheRemoteOnce pins the full text of the errors a user
// meets most: a send's error names the remote once, at its start, and then
// says what happened; the peer's side logs its view, the peer being an
// attribute of the log line.
func TestErrorTextNamesTheRemoteOnce(t *testing.T) {
	chains := chainFiles(t, "ca", 2)
	stranger := chainFiles(t, "another ca", 1)
	type outcome struct {
		to      string // the destination, as the user wrote it
		err     error  // the send's
		peerLog *logRecorder
	}
	send := func(t *testing.T, from *Node, to string, data []byte) error {
		m, err := NewMessage(to, data)
		if err != nil {
			t.Fatal(err)
		}
		return from.Send(ctxT(t), m)
	}
	for _, tc := range []struct {
		name    string
		run     func(t *testing.T) outcome
		want    string // %s: the destination
		kind    error
		peerLog []string // the peer's "connection closed" line, level and err: one of these
	}{{
		name: "refused",
		run: func(t *testing.T) outcome {
			to := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
			return outcome{to: to, err: send(t, startNode(t, testConfig(false, nil)), to, []byte("x"))}
		},
		want: "send to %s: chirp: cannot connect: connection refused",
		kind: ErrCannotConnect,
	}, {
		name: "no ACK in time",
		run: func(t *testing.T) outcome {
			cfg := testConfig(false, HandlerFunc(func(*Message) {}))
			cfg.ManualRelease = true // and never released
			hoarder := startNode(t, cfg)
			cfg = testConfig(false, nil)
			cfg.Timeout = 300 * time.Millisecond
			return outcome{to: addr(hoarder), err: send(t, startNode(t, cfg), addr(hoarder), []byte("x"))}
		},
		want: "send to %s: chirp: timeout: no ACK within 300ms",
		kind: ErrTimeout,
	}, {
		name: "peer hangs up before the ACK",
		run: func(t *testing.T) outcome {
			to := hangUpPeer(t)
			return outcome{to: to, err: send(t, startNode(t, testConfig(false, nil)), to, []byte("x"))}
		},
		want: "send to %s: chirp: connection lost: peer closed the connection",
		kind: ErrConnLost,
	}, {
		name: "plaintext node to TLS node",
		run: func(t *testing.T) outcome {
			cfg, log := logged(tlsConfig(false, nil, chains[0]))
			tlsNode := startNode(t, cfg)
			plain := startNode(t, on127002(testConfig(false, nil)))
			to := at("127.0.0.2", tlsNode)
			return outcome{to: to, err: send(t, plain, to, []byte("x")), peerLog: log}
		},
		want:    "send to %s: chirp: cannot connect: peer closed the connection without a handshake; it may expect TLS (encryption on at one end only)",
		kind:    ErrCannotConnect,
		peerLog: []string{"WARN chirp: TLS error: peer speaks plaintext, not TLS: encryption is on at one end only"},
	}, {
		name: "TLS node to plaintext node",
		run: func(t *testing.T) outcome {
			cfg, log := logged(on127002(testConfig(false, nil)))
			plain := startNode(t, cfg)
			tlsNode := startNode(t, tlsConfig(false, nil, chains[0]))
			to := at("127.0.0.2", plain)
			return outcome{to: to, err: send(t, tlsNode, to, []byte("x")), peerLog: log}
		},
		want:    "send to %s: chirp: TLS error: peer speaks plaintext, not TLS: encryption is on at one end only",
		kind:    ErrTLS,
		peerLog: []string{"WARN chirp: TLS error: peer speaks TLS, not plaintext: encryption is on at one end only"},
	}, {
		name: "peer of another CA",
		run: func(t *testing.T) outcome {
			cfg, log := logged(tlsConfig(false, nil, chains[0]))
			rx := startNode(t, cfg)
			to := at("127.0.0.2", rx)
			return outcome{to: to, err: send(t, startNode(t, tlsConfig(false, nil, stranger[0])), to, []byte("x")), peerLog: log}
		},
		// TLS 1.3: the client checks the server's certificate first, and
		// tells the server so with an alert, then closes. The server's
		// handshake runs in a goroutine of its own: when the close is
		// handled before that goroutine read the alert, the close is all
		// the server knows.
		want: `send to %s: chirp: TLS error: handshake failed: peer certificate "CN=node0,O=chirp": x509: certificate signed by unknown authority`,
		kind: ErrTLS,
		peerLog: []string{
			"WARN chirp: TLS error: handshake failed: remote error: tls: bad certificate",
			"WARN chirp: TLS error: peer closed the connection during the TLS handshake; it may not trust our certificate, or have none",
		},
	}, {
		name: "message too large for the peer",
		run: func(t *testing.T) outcome {
			cfg, log := logged(testConfig(false, nil))
			cfg.MaxMessageSize = 1000
			rx := startNode(t, cfg)
			return outcome{to: addr(rx), err: send(t, startNode(t, testConfig(false, nil)), addr(rx), make([]byte, 2000)), peerLog: log}
		},
		// The sender learns only that the peer hung up: chirp has no frame
		// that says why.
		want:    "send to %s: chirp: connection lost: peer closed the connection",
		kind:    ErrConnLost,
		peerLog: []string{"INFO chirp: message too large: peer sent 2000 bytes (header and data), MaxMessageSize is 1000"},
	}, {
		name: "no credentials for a peer that needs TLS",
		run: func(t *testing.T) outcome {
			rx := startNode(t, tlsConfig(false, nil, chains[1]))
			zero := startNode(t, on127002(Config{Port: AnyPort}))
			to := at("127.0.0.2", rx)
			return outcome{to: to, err: send(t, zero, to, []byte("x"))}
		},
		want: "send to %s: chirp: TLS error: peer needs TLS and this node has no credentials: set Config.CertChainPEM, or DisableEncryption",
		kind: ErrTLS,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.run(t)
			if o.err == nil {
				t.Fatal("send succeeded")
			}
			if want := fmt.Sprintf(tc.want, o.to); o.err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", o.err, want)
			}
			if !errors.Is(o.err, tc.kind) {
				t.Errorf("error %v is not %v", o.err, tc.kind)
			}
			ip, _, _ := strings.Cut(o.to, ":")
			if k := strings.Count(o.err.Error(), ip); k != 1 {
				t.Errorf("error names %s %d times", ip, k)
			}
			if tc.peerLog == nil {
				return
			}
			rec := o.peerLog.waitFor(t, "chirp: connection closed")
			if got := rec.level.String() + " " + rec.err; !slices.Contains(tc.peerLog, got) {
				t.Errorf("peer logged\n got %s\nwant %s", got, strings.Join(tc.peerLog, "\n  or "))
			}
			if !strings.HasPrefix(rec.peer, "127.0.0.") || strings.Contains(rec.err, "127.0.0.") {
				t.Errorf("peer logged peer=%q err=%q: the peer belongs in its attribute, once", rec.peer, rec.err)
			}
		})
	}
}

// TestPeerCloseIsDebugNotProtocolError: a peer closing an idle connection
// is ordinary: logged at Debug, not counted as a protocol error, and the
// next send dials again.
func TestPeerCloseIsDebugNotProtocolError(t *testing.T) {
	cfg, log := logged(testConfig(false, nil))
	tx := startNode(t, cfg)
	rcfg := testConfig(false, nil)
	rx, err := Start(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMessage(addr(rx), []byte("hello"))
	if err := tx.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	if err := rx.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rec := log.waitFor(t, "chirp: connection closed")
	if rec.level != slog.LevelDebug || rec.err != "chirp: connection lost: peer closed the connection" {
		t.Fatalf("logged %v %q", rec.level, rec.err)
	}
	for _, r := range log.records() {
		if r.level > slog.LevelDebug {
			t.Errorf("logged at %v: %s %s", r.level, r.msg, r.err)
		}
	}
	if st := tx.Stats(); st.ProtocolErrors != 0 || st.SendErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestZeroConfigStarts: the zero Config (but for the port, which tests
// must not fix) starts, with encryption on and no credentials, and talks
// plaintext over 127.0.0.1 and ::1 in both directions.
func TestZeroConfigStarts(t *testing.T) {
	a := startNode(t, Config{Port: AnyPort})
	got := make(chan string, 4)
	b := startNode(t, Config{Port: AnyPort, Handler: HandlerFunc(func(m *Message) { got <- string(m.Data) })})
	for _, ip := range []string{"127.0.0.1", "[::1]"} {
		for _, pair := range [][2]*Node{{a, b}, {b, a}} {
			from, to := pair[0], pair[1]
			m, _ := NewMessage(at(ip, to), []byte("hi"))
			if err := from.Send(ctxT(t), m); err != nil {
				t.Fatalf("%s: %v", ip, err)
			}
		}
	}
	if len(got) != 2 {
		t.Fatalf("b received %d messages, want 2", len(got))
	}
}

// TestNodeWithoutCredentialsRefusesPeersThatNeedTLS: with encryption on
// and no CertChainPEM, nothing leaves the machine in plaintext: a send to
// 127.0.0.2 fails before any connection is made, and a peer at 127.0.0.2
// is hung up on before the node's handshake goes out.
func TestNodeWithoutCredentialsRefusesPeersThatNeedTLS(t *testing.T) {
	cfg, log := logged(on127002(Config{Port: AnyPort}))
	n := startNode(t, cfg)

	t.Run("out", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan struct{}, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				accepted <- struct{}{}
				c.Close()
			}
		}()
		defer ln.Close()
		m, _ := NewMessage(ln.Addr().String(), []byte("secret"))
		err = n.Send(ctxT(t), m)
		if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "CertChainPEM") || !strings.Contains(err.Error(), "DisableEncryption") {
			t.Fatalf("send to a peer that needs TLS: %v", err)
		}
		select {
		case <-accepted:
			t.Fatal("the node connected to a peer that needs TLS")
		case <-time.After(200 * time.Millisecond):
		}
	})

	t.Run("in", func(t *testing.T) {
		d := net.Dialer{Timeout: rawIOTimeout, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		c, err := d.Dial("tcp", at("127.0.0.2", n))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(codec.Handshake{Port: 4000, Identity: randomIdentity()}.Append(nil))
		_ = c.SetReadDeadline(time.Now().Add(rawIOTimeout))
		k, err := io.ReadAll(c)
		if len(k) != 0 || err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("the node sent %d bytes (%v) to a peer that needs TLS", len(k), err)
		}
		rec := log.waitFor(t, "chirp: refused a peer")
		if rec.level != slog.LevelWarn || !strings.Contains(rec.err, "CertChainPEM") || !strings.HasPrefix(rec.peer, "127.0.0.2:") {
			t.Fatalf("logged %+v", rec)
		}
	})

	if st := n.Stats(); st.Connections != 0 || st.MessagesOut != 0 || st.Remotes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// dribble writes its first bytes one at a time, so that the node reads
// them in separate calls.
type dribble struct {
	net.Conn
	slow int // bytes still to write one by one
}

func (d *dribble) Write(p []byte) (int, error) {
	n := 0
	for ; d.slow > 0 && n < len(p); d.slow-- {
		if _, err := d.Conn.Write(p[n : n+1]); err != nil {
			return n, err
		}
		n++
		time.Sleep(2 * time.Millisecond)
	}
	k, err := d.Conn.Write(p[n:])
	return n + k, err
}

// TestPlaintextNodeTellsClientHelloFromHandshakeByteByByte: the first bytes
// of a connection decide between a TLS ClientHello and a chirp handshake,
// even when they arrive one at a time.
func TestPlaintextNodeTellsClientHelloFromHandshakeByteByByte(t *testing.T) {
	cfg, log := logged(testConfig(true, nil))
	n, _ := startEchoNode(t, cfg)

	c, err := net.DialTimeout("tcp", addr(n), rawIOTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rawIOTimeout))
	tc := tls.Client(&dribble{Conn: c, slow: 12}, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS handshake with a plaintext node succeeded")
	}
	rec := log.waitFor(t, "chirp: connection closed")
	if rec.level != slog.LevelWarn || rec.err != errPeerTLS.Error() {
		t.Fatalf("logged %v %q", rec.level, rec.err)
	}

	p := connectRaw(t, n)
	p.conn = &dribble{Conn: p.conn, slow: codec.HandshakeSize}
	p.sendHandshake()
	p.expectHandshake(n)
	p.exchange(nil, []byte("byte by byte"))
}

// TestPortProbeIsAnOrdinaryClose: a peer that connects and hangs up
// without a byte (a port probe, a health check) is logged at Debug, by a
// TLS node as by a plaintext one.
func TestPortProbeIsAnOrdinaryClose(t *testing.T) {
	chains := chainFiles(t, "ca", 1)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{{"TLS", tlsConfig(false, nil, chains[0])}, {"plaintext", on127002(testConfig(false, nil))}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, log := logged(tc.cfg)
			n := startNode(t, cfg)
			d := net.Dialer{Timeout: rawIOTimeout, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
			c, err := d.Dial("tcp", at("127.0.0.2", n))
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			rec := log.waitFor(t, "chirp: connection closed")
			// A reset when our plaintext handshake was left unread.
			ordinary := []string{"chirp: connection lost: peer closed the connection", "chirp: connection lost: connection reset by peer"}
			if rec.level != slog.LevelDebug || !slices.Contains(ordinary, rec.err) {
				t.Fatalf("logged %v %q", rec.level, rec.err)
			}
		})
	}
}
