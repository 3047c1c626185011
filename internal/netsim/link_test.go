package netsim

import (
	"encoding/binary"
	"io"
	"os"
	"testing"
	"time"
)

// pipeNet is a switch whose hosts' TAP devices are pipes: the link logic
// without namespaces (and without root). Every frame is 100 bytes, the
// first six the destination MAC, then a sequence number.
type pipeNet struct {
	n   *Net
	out []*os.File // what host i receives
}

func newPipeNet(t *testing.T, hosts int) *pipeNet {
	p := &pipeNet{n: &Net{tb: t, cut: map[[2]int]bool{}}}
	for i := 1; i <= hosts; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		h := &Host{net: p.n, idx: i, up: true, tap: w}
		h.link.wake, h.link.stop = make(chan struct{}, 1), make(chan struct{})
		p.n.hosts = append(p.n.hosts, h)
		p.out = append(p.out, r)
		p.n.wg.Add(1)
		go h.link.run(h)
	}
	t.Cleanup(func() {
		for i, h := range p.n.hosts {
			close(h.link.stop)
			h.tap.Close()
			p.out[i].Close()
		}
		p.n.wg.Wait()
	})
	return p
}

func frame(to, seq int) []byte {
	f := make([]byte, 100)
	copy(f, []byte{2, 0, 0xc6, 0x12, 0, byte(to)})
	if to == 0 {
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	binary.BigEndian.PutUint32(f[6:], uint32(seq))
	return f
}

// send puts count frames from host 1 to host to (0: broadcast).
func (p *pipeNet) send(to, count int) {
	h := p.n.hosts[0]
	for i := range count {
		h.link.put(h, frame(to, i))
	}
}

// recv reads the sequence numbers host i receives within wait.
func (p *pipeNet) recv(i int, wait time.Duration) []int {
	_ = p.out[i-1].SetReadDeadline(time.Now().Add(wait))
	var seqs []int
	f := make([]byte, 100)
	for {
		if _, err := io.ReadFull(p.out[i-1], f); err != nil {
			return seqs
		}
		seqs = append(seqs, int(binary.BigEndian.Uint32(f[6:])))
	}
}

func inOrder(s []int) bool {
	for i := 1; i < len(s); i++ {
		if s[i] < s[i-1] {
			return false
		}
	}
	return true
}

func TestLinkImpairments(t *testing.T) {
	p := newPipeNet(t, 3)
	h1 := p.n.hosts[0]

	p.send(2, 50)
	if got := p.recv(2, 100*time.Millisecond); len(got) != 50 || !inOrder(got) {
		t.Fatalf("plain: %v", got)
	}
	if got := p.recv(3, 10*time.Millisecond); len(got) != 0 {
		t.Fatalf("host 3 got frames for host 2: %v", got)
	}
	p.send(0, 1)
	if len(p.recv(2, 100*time.Millisecond)) != 1 || len(p.recv(3, 100*time.Millisecond)) != 1 {
		t.Fatal("broadcast not delivered to every other host")
	}

	p.n.Netem(h1, Impair{Delay: 30 * time.Millisecond, Jitter: 10 * time.Millisecond})
	p.send(2, 50)
	got := p.recv(2, 300*time.Millisecond)
	if len(got) != 50 || !inOrder(got) {
		t.Fatalf("delay with jitter: %d frames, in order %v", len(got), inOrder(got))
	}
	p.n.Netem(h1, Impair{Delay: 60 * time.Millisecond})
	start := time.Now()
	p.send(2, 1)
	p.recv(2, 200*time.Millisecond)
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("60 ms delay: arrived after %v", d)
	}

	p.n.Netem(h1, Impair{Delay: 50 * time.Millisecond, Reorder: 0.5})
	p.send(2, 100)
	if got := p.recv(2, 300*time.Millisecond); len(got) != 100 || inOrder(got) {
		t.Errorf("reorder 50%%: %d frames, in order %v", len(got), inOrder(got))
	}

	p.n.Netem(h1, Impair{Loss: 0.5})
	p.send(2, 400)
	if got := len(p.recv(2, 200*time.Millisecond)); got < 120 || got > 280 {
		t.Errorf("loss 50%%: %d of 400 arrived", got)
	}

	// 100 frames of 124 wire bytes at 1 Mbit/s take 99 ms.
	p.n.Netem(h1, Impair{Rate: 1e6})
	start = time.Now()
	p.send(2, 100)
	if got := len(p.recv(2, 300*time.Millisecond)); got != 100 {
		t.Errorf("rate: %d of 100 arrived", got)
	}
	if d := time.Since(start); d < 95*time.Millisecond {
		t.Errorf("1 Mbit/s: 12400 bytes took %v", d)
	}
	p.n.Netem(h1, Impair{Rate: 1e6, Limit: 10})
	p.send(2, 100)
	if got := len(p.recv(2, 300*time.Millisecond)); got != 10 {
		t.Errorf("queue limit 10: %d of 100 arrived", got)
	}

	p.n.Netem(h1, Impair{})
	p.n.Partition(h1, p.n.hosts[1])
	p.send(0, 1)
	if len(p.recv(2, 50*time.Millisecond)) != 0 || len(p.recv(3, 100*time.Millisecond)) != 1 {
		t.Error("partition between 1 and 2 wrong")
	}
	p.n.Heal()
	p.n.Link(p.n.hosts[2], false)
	p.send(0, 1)
	if len(p.recv(2, 100*time.Millisecond)) != 1 || len(p.recv(3, 50*time.Millisecond)) != 0 {
		t.Error("link of host 3 down: wrong")
	}
	// Frames on the wire when the link goes down are lost too.
	p.n.Link(p.n.hosts[2], true)
	p.n.Netem(h1, Impair{Delay: 50 * time.Millisecond})
	p.send(3, 1)
	p.n.Link(p.n.hosts[2], false)
	if len(p.recv(3, 150*time.Millisecond)) != 0 {
		t.Error("a frame on the wire reached a pulled link")
	}
}
