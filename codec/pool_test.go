package codec

import "testing"

func TestBuffersAreCountedUntilReturned(t *testing.T) {
	before := OutstandingBuffers()
	a, b := GetBuffer(), GetBuffer()
	if got := OutstandingBuffers() - before; got != 2 {
		t.Fatalf("after two GetBuffer: %d outstanding, want 2", got)
	}
	PutBuffer(a)
	PutBuffer(b)
	if got := OutstandingBuffers() - before; got != 0 {
		t.Fatalf("after returning both: %d outstanding, want 0", got)
	}
}

func TestPutBufferIgnoresNil(t *testing.T) {
	before := OutstandingBuffers()
	PutBuffer(nil)
	if got := OutstandingBuffers(); got != before {
		t.Fatalf("PutBuffer(nil) changed the count from %d to %d", before, got)
	}
}

func TestGetBufferReturnsEmptyBuffer(t *testing.T) {
	b := GetBuffer()
	b.B = append(b.B, "leftover"...)
	PutBuffer(b)
	c := GetBuffer()
	defer PutBuffer(c)
	if len(c.B) != 0 {
		t.Fatalf("GetBuffer returned %d bytes of old content", len(c.B))
	}
}

// TestRareBigBodiesAreReusedAmongManySmallOnes: pooling per size class
// keeps 64 KiB bodies in the pool even when almost every message is small
// (one shared bytebufferpool.Pool calibrates to the small ones and drops
// the big buffers).
func TestRareBigBodiesAreReusedAmongManySmallOnes(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	small, big := make([]byte, 100), make([]byte, 64<<10)
	cycle := func() {
		for i := 0; i < 50; i++ {
			b := GetBufferFor(len(small))
			b.B = append(b.B[:0], small...)
			PutBuffer(b)
		}
		b := GetBufferFor(len(big))
		b.B = append(b.B[:0], big...)
		PutBuffer(b)
	}
	for i := 0; i < 2000; i++ { // past bytebufferpool's calibration point
		cycle()
	}
	if allocs := testing.AllocsPerRun(200, cycle); allocs > 0.1 {
		t.Fatalf("%.2f allocations per cycle of 50 small and 1 big buffer", allocs)
	}
}

// TestBodiesAreReusedAfterSizesChange: after tens of thousands of 5-byte
// bodies, 1 KiB bodies of the same size class are reused at once (a
// calibrating pool, as bytebufferpool's, dropped them until it recalibrated
// 42000 returns later: two allocations per pass in chirp bench's 1 KiB
// scenarios that follow the 5-byte ones).
func TestBodiesAreReusedAfterSizesChange(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	use := func(size int) {
		b := GetBufferFor(size)
		b.B = append(b.B[:0], make([]byte, size)...)
		PutBuffer(b)
	}
	for i := 0; i < 50000; i++ {
		use(5)
	}
	for i := 0; i < 10; i++ { // grow what the pool holds
		use(1 << 10)
	}
	if allocs := testing.AllocsPerRun(1000, func() { use(1 << 10) }); allocs > 0.01 {
		t.Fatalf("%.2f allocations per 1 KiB body after small ones", allocs)
	}
}
