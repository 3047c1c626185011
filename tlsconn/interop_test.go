package tlsconn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochirp/chirp/reactor"
	"github.com/gochirp/chirp/tlsconn/pki"
)

// These tests put a Session on one end of a loopback TCP connection and
// plain crypto/tls on a net.Conn on the other, to show that the session
// speaks standard TLS.

const interopSize = 1 << 20

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func TestSessionClientWithCryptoTLSServer(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	ln := listen(t)
	cfg := n.b.ServerConfig()
	cfg.SessionTicketsDisabled = false // tickets the client must consume
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, cfg)
		_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.CopyN(tc, tc, interopSize); err != nil {
			served <- err
			return
		}
		served <- tc.Close() // sends close_notify
	}()

	e := sockEnd(t, dial(t, ln.Addr().String()), 7)
	e.start(t, n.a.ClientConfig(), true, 10*time.Second)
	if err := e.waitDone(t); err != nil {
		t.Fatal(err)
	}
	var st tls.ConnectionState
	e.loop.do(t, func() { st = e.s.State() })
	if st.Version != tls.VersionTLS13 {
		t.Errorf("version %x, want TLS 1.3", st.Version)
	}
	msg := randomBytes(t, interopSize)
	if err := e.writev(t, msg[:27], msg[27:]); err != nil {
		t.Fatal(err)
	}
	if got := e.waitGot(t, len(msg)); !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
	if err := <-served; err != nil {
		t.Fatalf("crypto/tls server: %v", err)
	}
	if err := e.waitFailure(t); !errors.Is(err, io.EOF) {
		t.Fatalf("after close_notify: %v, want io.EOF", err)
	}
}

func TestSessionServerWithCryptoTLSClient(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	ln := listen(t)
	msg := randomBytes(t, interopSize)
	result := make(chan error, 1)
	go func() {
		c := dial(t, ln.Addr().String())
		defer c.Close()
		tc := tls.Client(c, n.a.ClientConfig())
		_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			result <- err
			return
		}
		if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
			result <- errors.New("not TLS 1.3")
			return
		}
		go func() { _, _ = tc.Write(msg) }()
		echo := make([]byte, len(msg))
		if _, err := io.ReadFull(tc, echo); err != nil {
			result <- err
			return
		}
		if !bytes.Equal(echo, msg) {
			result <- errors.New("echo differs")
			return
		}
		result <- nil
	}()

	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	e := sockEnd(t, c, 7)
	e.onData = func(p []byte) { // echo from inside deliver
		if err := e.s.Writev([][]byte{p}); err != nil {
			t.Error(err)
		}
	}
	e.start(t, n.b.ServerConfig(), false, 10*time.Second)
	if err := e.waitDone(t); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("crypto/tls client: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("crypto/tls client did not finish")
	}
}

func TestSessionServerRefusesCryptoTLSClientWithoutCertificate(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	ln := listen(t)
	result := make(chan error, 1)
	go func() {
		c := dial(t, ln.Addr().String())
		defer c.Close()
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			result <- err
			return
		}
		_, err := tc.Read(make([]byte, 1))
		result <- err
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	e := sockEnd(t, c, 0)
	e.start(t, n.b.ServerConfig(), false, 10*time.Second)
	if err := e.waitDone(t); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("server: %v; want ErrHandshake about the certificate", err)
	}
	if err := <-result; err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("crypto/tls client: %v; want the certificate required alert", err)
	}
}

// reactorEcho is a reactor.Handler that runs a TLS echo server the way a
// node would: a session per connection, fed from OnData.
type reactorEcho struct {
	cfg  *tls.Config
	done chan error
}

func (h *reactorEcho) OnOpen(c *reactor.Conn) {
	s := NewSession(c.Reactor(), h.cfg, false, 10*time.Second, c.Write, func(err error) {
		h.done <- err
		if err != nil {
			c.Close(err)
		}
	})
	c.SetContext(s)
}

func (h *reactorEcho) OnData(c *reactor.Conn, data []byte) int {
	s := c.Context().(*Session)
	err := s.Feed(data, func(p []byte) {
		if err := s.Writev([][]byte{p}); err != nil {
			c.Close(err)
		}
	})
	if err != nil {
		c.Close(err)
	}
	return len(data)
}

func (h *reactorEcho) OnClose(c *reactor.Conn, err error) {
	if s, ok := c.Context().(*Session); ok {
		s.Close()
	}
}

func TestSessionOnTheReactor(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	h := &reactorEcho{cfg: n.b.ServerConfig(), done: make(chan error, 1)}
	r, err := reactor.Start(reactor.Config{ListenV4: "127.0.0.1", Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	c := dial(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port())))
	defer c.Close()
	tc := tls.Client(c, n.a.ClientConfig())
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	msg := randomBytes(t, interopSize)
	wrote := make(chan error, 1)
	go func() { _, err := tc.Write(msg); wrote <- err }()
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(tc, echo); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(echo, msg) {
		t.Fatal("echo differs")
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-h.done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}
