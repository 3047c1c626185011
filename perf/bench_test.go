package perf

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkPass measures the passes of chirp bench in one process: a local
// node and an echo node of the same mode over loopback, 1, 16 or 64
// messages in flight, payloads of 5 B, 1 KiB and 64 KiB. One op is one pass.
func BenchmarkPass(b *testing.B) {
	for _, mode := range []string{"sync", "async"} {
		for _, inflight := range []int{1, 16, 64} {
			for _, size := range []int{5, 1 << 10, 64 << 10} {
				name := fmt.Sprintf("%s/%s/%s", mode, inflightName(inflight), SizeName(size))
				b.Run(name, func(b *testing.B) { benchPass(b, mode == "async", inflight, size) })
			}
		}
	}
}

func benchPass(b *testing.B, async bool, inflight, size int) {
	peer, err := InProcessEcho(localConfig(async, 5*time.Second), "")
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	c, err := NewClient(localConfig(async, 5*time.Second), "")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	ld := Load{Addr: peer.Addr, InFlight: inflight, Data: payload(size), WaitEcho: true, StopOnError: true}
	// Connect and warm the pools outside the timing.
	ld.Count = int64(inflight)
	if _, err := c.Run(context.Background(), ld); err != nil {
		b.Fatal(err)
	}
	ld.Count = int64(b.N)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	out, err := c.Run(context.Background(), ld)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if out.Passes != int64(b.N) {
		b.Fatalf("%d passes, want %d", out.Passes, b.N)
	}
	b.ReportMetric(out.Rate(), "passes/s")
}

// BenchmarkRawTCPRoundTrip is the floor of a single pass: 5 bytes to a TCP
// echo and back (in this process, so cheaper than chirp bench's baseline).
func BenchmarkRawTCPRoundTrip(b *testing.B) {
	peer, err := InProcessTCPEcho()
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	pp, err := dialTCPPingPong(context.Background(), peer.Addr, 5, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer pp.Close()
	b.ReportAllocs()
	b.ResetTimer()
	out, err := pp.run(context.Background(), 0, int64(b.N))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(out.Rate(), "passes/s")
}

// BenchmarkChanRoundTrip is a round trip between two goroutines.
func BenchmarkChanRoundTrip(b *testing.B) {
	p := newChanPingPong()
	defer p.Close()
	b.ReportAllocs()
	b.ResetTimer()
	out, err := p.run(context.Background(), 0, int64(b.N))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(out.Rate(), "passes/s")
}
