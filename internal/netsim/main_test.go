package netsim

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
	"github.com/gochirp/chirp/tlsconn/pki"
)

// meshFor is how long the mesh scenario sends, per variant.
var meshFor = flag.Duration("netsim.mesh", 4*time.Second, "how long each mesh variant sends (the issue asks for 30s)")

func TestMain(m *testing.M) {
	RunAgentIfChild()
	leakcheck.VerifyTestMain(m)
}

// chains writes a CA and n node chains (key, certificate, CA: `chirp
// certs`' format) and returns their paths.
func chains(t *testing.T, n int) []string {
	t.Helper()
	ca, err := pki.NewCA("netsim CA", pki.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for i := range n {
		id, err := ca.Issue(fmt.Sprintf("host%d", i+1), pki.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		pem, err := ca.ChainPEM(id)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("host%d.pem", i+1))
		if err := os.WriteFile(p, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// agents starts an agent on every host.
func agents(t *testing.T, hosts []*Host) []*Agent {
	as := make([]*Agent, len(hosts))
	for i, h := range hosts {
		as[i] = h.StartAgent(t)
	}
	// All end at once (each agent's own cleanup then only waits).
	t.Cleanup(func() {
		for _, a := range as {
			_ = a.in.Close()
		}
	})
	return as
}

// missing returns the identities of sent that are not in received.
func missing(sent, received []string) []string {
	have := make(map[string]bool, len(received))
	for _, id := range received {
		have[id] = true
	}
	var miss []string
	for _, id := range sent {
		if !have[id] {
			miss = append(miss, id)
		}
	}
	return miss
}

func sum(m map[string]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// eventually polls cond every 50 ms until it holds or limit passed, and
// returns how long it took and whether it held.
func eventually(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// streams reassembles the TCP payload the switch delivered, per direction
// of each connection, from a Sniff.
type streams struct {
	mu sync.Mutex
	m  map[flow]*stream
}

type flow struct {
	src, dst         [4]byte
	srcPort, dstPort uint16
}

type stream struct {
	isn  uint32
	syn  bool
	segs map[uint32][]byte // by sequence number
}

func (s *streams) sniff(_, _ *Host, frame []byte) {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return
	}
	ip := frame[14:]
	ihl := int(ip[0]&15) * 4
	if ip[9] != 6 || len(ip) < ihl+20 {
		return
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	tcp := ip[ihl:min(total, len(ip))]
	off := int(tcp[12]>>4) * 4
	if off > len(tcp) {
		return
	}
	var f flow
	copy(f.src[:], ip[12:16])
	copy(f.dst[:], ip[16:20])
	f.srcPort, f.dstPort = binary.BigEndian.Uint16(tcp), binary.BigEndian.Uint16(tcp[2:])
	seqNo := binary.BigEndian.Uint32(tcp[4:])
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[f]
	if st == nil {
		st = &stream{segs: map[uint32][]byte{}}
		s.m[f] = st
	}
	if tcp[13]&2 != 0 { // SYN
		st.isn, st.syn = seqNo, true
	}
	if p := tcp[off:]; len(p) > 0 {
		st.segs[seqNo] = append([]byte(nil), p...)
	}
}

// payloads returns each direction's byte stream, from the first byte after
// the SYN, in order, as far as it is contiguous.
func (s *streams) payloads() (map[flow][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[flow][]byte{}
	for f, st := range s.m {
		if !st.syn {
			return nil, fmt.Errorf("flow %v: no SYN captured", f)
		}
		var b []byte
		next := st.isn + 1
		for {
			p, ok := st.segs[next]
			if !ok {
				break
			}
			b = append(b, p...)
			next += uint32(len(p))
		}
		out[f] = b
	}
	return out, nil
}
