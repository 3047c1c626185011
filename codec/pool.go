package codec

import (
	"sync/atomic"

	"github.com/valyala/bytebufferpool"
)

// pools are private so that chirp's message sizes calibrate them, not the
// small buffers of other bytebufferpool users in the same process (gnet is
// one). There is one per size class: a bytebufferpool.Pool drops buffers
// above the size most of its recent buffers had, so with one pool for all,
// a few 64 KiB messages among many small ones were never reused (one
// allocation each, 2.7x fewer 64 KiB passes/s in chirp bench).
var pools [len(classLimits)]bytebufferpool.Pool

// classLimits are the largest capacities of the size classes. Bigger
// buffers are not pooled: they are rare, and holding them costs more than
// allocating them.
var classLimits = [...]int{4 << 10, 128 << 10, 2 << 20}

// class is the pool for a buffer of capacity n, or -1.
func class(n int) int {
	for i, limit := range classLimits {
		if n <= limit {
			return i
		}
	}
	return -1
}

// outstanding counts buffers handed out by GetBuffer and not yet returned.
var outstanding atomic.Int64

// GetBuffer returns an empty buffer from the pool of small buffers. Return
// it with PutBuffer once nothing refers to its bytes any more.
func GetBuffer() *bytebufferpool.ByteBuffer { return GetBufferFor(0) }

// GetBufferFor returns an empty buffer from the pool of the size class that
// holds n bytes; its capacity may still be smaller than n.
func GetBufferFor(n int) *bytebufferpool.ByteBuffer {
	outstanding.Add(1)
	if c := class(n); c >= 0 {
		return pools[c].Get()
	}
	return new(bytebufferpool.ByteBuffer)
}

// PutBuffer returns b to the pool; b must not be used afterwards. A nil b is
// ignored. Returning a buffer twice corrupts the pool, as with any pool.
func PutBuffer(b *bytebufferpool.ByteBuffer) {
	if b == nil {
		return
	}
	outstanding.Add(-1)
	if c := class(cap(b.B)); c >= 0 {
		pools[c].Put(b)
	}
}

// OutstandingBuffers reports how many buffers are out of the pool: taken with
// GetBuffer (including by a Decoder) and not yet returned. Tests use it to
// find leaks, and node statistics report it.
func OutstandingBuffers() int64 {
	return outstanding.Load()
}
