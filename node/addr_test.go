package node

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDNS answers A and AAAA queries on a loopback UDP port from names, so
// that name lookups in tests never leave the machine; names it does not
// know are NXDOMAIN, and queries for "silent." names get no answer at all.
// It replaces the package's resolver until the test ends.
func fakeDNS(t *testing.T, names map[string][]netip.Addr) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:k], names); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	server := pc.LocalAddr().String()
	var mu sync.Mutex
	var conns []net.Conn
	old := resolver
	resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", server)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}}
	t.Cleanup(func() {
		resolver = old
		// A lookup goes on after its caller's context ended (the resolver
		// shares it between callers) until its own timeout: end it now.
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// dnsAnswer builds the response to query q (RFC 1035 §4.1), nil for none.
func dnsAnswer(q []byte, names map[string][]netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question: labels up to the root, then type and class.
	off, labels := 12, []string{}
	for off < len(q) && q[off] != 0 {
		l := int(q[off])
		if off+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[off+1:off+1+l]))
		off += 1 + l
	}
	off++
	if off+4 > len(q) {
		return nil
	}
	name := strings.ToLower(strings.Join(labels, ".")) + "."
	qtype := binary.BigEndian.Uint16(q[off:])
	question := q[12 : off+4]
	if strings.HasPrefix(name, "silent.") {
		return nil
	}
	addrs, known := names[name]
	var answers [][]byte
	for _, a := range addrs {
		if (qtype == 1) != a.Is4() || (qtype != 1 && qtype != 28) {
			continue
		}
		rr := []byte{0xC0, 12} // the name: a pointer to the question's
		rr = binary.BigEndian.AppendUint16(rr, qtype)
		rr = binary.BigEndian.AppendUint16(rr, 1) // IN
		rr = binary.BigEndian.AppendUint32(rr, 60)
		rr = binary.BigEndian.AppendUint16(rr, uint16(a.BitLen()/8))
		answers = append(answers, append(rr, a.AsSlice()...))
	}
	h := make([]byte, 12)
	copy(h, q[:2])          // ID
	h[2] = 0x80 | q[2]&0x01 // QR, RD as asked
	h[3] = 0x80             // RA, NOERROR
	if !known {
		h[3] |= 3 // NXDOMAIN
	}
	binary.BigEndian.PutUint16(h[4:], 1)
	binary.BigEndian.PutUint16(h[6:], uint16(len(answers)))
	resp := append(h, question...)
	for _, rr := range answers {
		resp = append(resp, rr...)
	}
	return resp
}

func TestNewMessageResolvesHostNames(t *testing.T) {
	fakeDNS(t, map[string][]netip.Addr{
		"both.chirp.test.":   {netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")},
		"v6only.chirp.test.": {netip.MustParseAddr("::1")},
	})
	for _, c := range []struct{ addr, want string }{
		{"127.0.0.1:2998", "127.0.0.1:2998"},
		{"[::1]:2998", "[::1]:2998"},
		{"both.chirp.test:2998", "127.0.0.1:2998"}, // IPv4 first
		{"v6only.chirp.test:3000", "[::1]:3000"},
	} {
		m, err := NewMessage(c.addr, nil)
		if err != nil {
			t.Errorf("%s: %v", c.addr, err)
			continue
		}
		if got := m.Addr.String(); got != c.want {
			t.Errorf("%s resolved to %s, want %s", c.addr, got, c.want)
		}
	}
}

// TestUnresolvableNameIsErrResolveWithinBound: a name nobody knows, and a
// name whose server never answers, give ErrResolve naming the host, the
// latter within the context's deadline.
func TestUnresolvableNameIsErrResolveWithinBound(t *testing.T) {
	fakeDNS(t, nil)
	_, err := NewMessage("nosuch.chirp.test:2998", nil)
	if !errors.Is(err, ErrResolve) || !strings.Contains(err.Error(), "nosuch.chirp.test") ||
		!strings.Contains(err.Error(), "no such host") {
		t.Fatalf("unknown name: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = NewMessageContext(ctx, "silent.chirp.test:2998", nil)
	if !errors.Is(err, ErrResolve) || !strings.Contains(err.Error(), "silent.chirp.test") {
		t.Fatalf("unanswered name: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("lookup took %v with a 300ms context", d)
	}
	for _, bad := range []string{"nocolon", "127.0.0.1:99999", "[::1:2998"} {
		if _, err := NewMessage(bad, nil); !errors.Is(err, ErrValue) {
			t.Errorf("%q: want ErrValue, got %v", bad, err)
		}
	}
}

// TestSendToAHostName: a message made with a name reaches the node.
func TestSendToAHostName(t *testing.T) {
	fakeDNS(t, map[string][]netip.Addr{"node.chirp.test.": {netip.MustParseAddr("127.0.0.1")}})
	got := make(chan string, 1)
	rx := startNode(t, testConfig(false, HandlerFunc(func(m *Message) { got <- string(m.Data) })))
	tx := startNode(t, testConfig(false, nil))
	m, err := NewMessage("node.chirp.test:"+strings.TrimPrefix(addr(rx), "127.0.0.1:"), []byte("by name"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "by name" {
		t.Fatalf("got %q", s)
	}
}
