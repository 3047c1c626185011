package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/heap"
	"github.com/gochirp/chirp/tlsconn/pki"
)

// chainFiles makes a CA and n node chain files (key, cert, CA) in a temp dir.
func chainFiles(t testing.TB, caName string, n int) []string {
	t.Helper()
	ca, err := pki.NewCA(caName, pki.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for i := 0; i < n; i++ {
		id, err := ca.Issue(fmt.Sprintf("node%d", i), pki.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		pem, err := ca.ChainPEM(id)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("node%d.pem", i))
		if err := os.WriteFile(p, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// tlsConfig is testConfig with encryption on, on 127.0.0.2: encrypted by
// libchirp's rule, and, since the node dials from its bind address, both
// ends see 127.0.0.2 and agree on it.
func tlsConfig(async bool, h Handler, chain string) Config {
	cfg := testConfig(async, h)
	cfg.DisableEncryption = false
	cfg.CertChainPEM = chain
	cfg.BindV4 = netip.MustParseAddr("127.0.0.2")
	cfg.DisableV6 = true
	return cfg
}

func at(ip string, n *Node) string { return fmt.Sprintf("%s:%d", ip, n.Port()) }

func TestTLSExchangeByRuleAndAlwaysEncrypt(t *testing.T) {
	chains := chainFiles(t, "ca", 2)
	for _, tc := range []struct {
		name   string
		async  bool
		ip     string
		always bool
	}{{"sync-127.0.0.2", false, "127.0.0.2", false}, {"async-127.0.0.2", true, "127.0.0.2", false},
		{"sync-always-127.0.0.1", false, "127.0.0.1", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var en *Node
			ecfg := tlsConfig(tc.async, echo(&en), chains[0])
			ecfg.AlwaysEncrypt = tc.always
			if tc.always {
				ecfg.BindV4 = netip.MustParseAddr("127.0.0.1")
			}
			en = startNode(t, ecfg)
			got := make(chan string, 4)
			cfg := tlsConfig(tc.async, HandlerFunc(func(m *Message) { got <- string(m.Data) }), chains[1])
			cfg.AlwaysEncrypt = tc.always
			if tc.always {
				cfg.BindV4 = netip.MustParseAddr("127.0.0.1")
			}
			tx := startNode(t, cfg)
			for i := 0; i < 3; i++ {
				m, _ := NewMessage(at(tc.ip, en), []byte(fmt.Sprintf("secret %d", i)))
				m.Header = []byte("h")
				if err := tx.Send(ctxT(t), m); err != nil {
					t.Fatalf("send: %v", err)
				}
				select {
				case s := <-got:
					if s != fmt.Sprintf("secret %d", i) {
						t.Fatalf("echo %q", s)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no echo over TLS")
				}
			}
			// A big message crosses many TLS records.
			big := make([]byte, 300<<10)
			for i := range big {
				big[i] = byte(i)
			}
			m, _ := NewMessage(at(tc.ip, en), big)
			a, err := tx.Request(ctxT(t), m)
			if err != nil || len(a.Data) != len(big) || a.Data[12345] != big[12345] {
				t.Fatalf("big request: %v (%d bytes)", err, len(a.Data))
			}
		})
	}
}

func TestTLSPeerFromAnotherCAFailsWithTLSError(t *testing.T) {
	ours := chainFiles(t, "ours", 1)
	theirs := chainFiles(t, "theirs", 1)
	rx := startNode(t, tlsConfig(false, nil, ours[0]))
	tx := startNode(t, tlsConfig(false, nil, theirs[0]))
	m, _ := NewMessage(at("127.0.0.2", rx), []byte("let me in"))
	err := tx.Send(ctxT(t), m)
	if !errors.Is(err, ErrTLS) {
		t.Fatalf("want ErrTLS, got %v", err)
	}
	// The receiver keeps serving peers of its own CA.
	ok := startNode(t, tlsConfig(false, nil, ours[0]))
	m2, _ := NewMessage(at("127.0.0.2", rx), []byte("friend"))
	if err := ok.Send(ctxT(t), m2); err != nil {
		t.Fatalf("same-CA peer after a refused one: %v", err)
	}
}

func TestPlaintextPeerToTLSNodeIsClosed(t *testing.T) {
	chains := chainFiles(t, "ca", 1)
	rx := startNode(t, tlsConfig(false, nil, chains[0]))
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", at("127.0.0.2", rx))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A chirp handshake in plaintext is not a ClientHello.
	_, _ = c.Write(make([]byte, 18))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1024)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("TLS node kept a plaintext peer open")
			}
			break
		}
	}
}

func TestTLSReconnectAfterPeerRestart(t *testing.T) {
	chains := chainFiles(t, "ca", 2)
	cfg := tlsConfig(false, nil, chains[0])
	rx, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tx := startNode(t, tlsConfig(false, nil, chains[1]))
	m, _ := NewMessage(at("127.0.0.2", rx), []byte("one"))
	if err := tx.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	_ = rx.Close(context.Background())
	cfg.Port = rx.Port()
	rx2 := startNode(t, cfg)
	eventually(t, 5*time.Second, "sender notices the dropped connection", func() bool { return tx.Stats().Connections == 0 })
	m2, _ := NewMessage(at("127.0.0.2", rx2), []byte("two"))
	if err := tx.Send(ctxT(t), m2); err != nil {
		t.Fatalf("send after the peer restarted: %v", err)
	}
}

func TestTLSFloodAgainstHeldSlotsStaysBounded(t *testing.T) {
	chains := chainFiles(t, "ca", 2)
	held := make(chan *Message, 10000)
	rcfg := tlsConfig(true, HandlerFunc(func(m *Message) { held <- m }), chains[0])
	rcfg.ManualRelease, rcfg.MaxSlots, rcfg.Workers = true, 2, 1
	rcfg.Timeout = 20 * time.Second
	rx := startNode(t, rcfg)
	tcfg := tlsConfig(true, nil, chains[1])
	tcfg.Timeout = 20 * time.Second
	tx := startNode(t, tcfg)
	const total = 3000
	payload := make([]byte, 1024)
	var ps []*Pending
	before := heap.InUse()
	for i := 0; i < total; i++ {
		m, _ := NewMessage(at("127.0.0.2", rx), append([]byte(fmt.Sprintf("%06d", i)), payload...))
		ps = append(ps, tx.Go(m))
	}
	eventually(t, 10*time.Second, "receiver pauses", func() bool { return rx.Stats().PausedConnections == 1 })
	time.Sleep(200 * time.Millisecond)
	if growth := int64(heap.InUse()) - int64(before); growth > 32<<20 {
		t.Fatalf("heap grew %d bytes", growth)
	}
	for i := 0; i < total; i++ {
		select {
		case m := <-held:
			if want := fmt.Sprintf("%06d", i); !strings.HasPrefix(string(m.Data), want) {
				t.Fatalf("message %d is %q", i, m.Data[:6])
			}
			_ = m.Release()
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d delivered", i, total)
		}
	}
	for _, p := range ps {
		if err := p.Wait(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStartFailsOnBadChainFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "broken.pem")
	_ = os.WriteFile(bad, []byte("not a pem"), 0o600)
	for _, path := range []string{filepath.Join(dir, "missing.pem"), bad} {
		cfg := testConfig(false, nil)
		cfg.DisableEncryption = false
		cfg.CertChainPEM = path
		_, err := Start(cfg)
		if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", path, err)
		}
	}
}
