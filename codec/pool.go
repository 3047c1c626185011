package codec

import (
	"sync"
	"sync/atomic"

	"github.com/valyala/bytebufferpool"
)

// pools are private so that only chirp's message bodies share them, one
// sync.Pool per size class. Not bytebufferpool.Pool: it drops buffers above
// the size most of its recent buffers had, and recalibrates only every
// 42000 returns, so after a run of small messages every 1 KiB body was a
// new allocation for tens of thousands of messages (and with one pool for
// all sizes, a few 64 KiB messages among many small ones never were
// reused). A buffer of a class is at most its limit, so what a pool keeps
// is bounded per buffer, and the garbage collector empties idle pools.
var pools [len(classLimits)]sync.Pool

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
		if b, ok := pools[c].Get().(*bytebufferpool.ByteBuffer); ok {
			return b
		}
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
		b.Reset()
		pools[c].Put(b)
	}
}

// OutstandingBuffers reports how many buffers are out of the pool: taken with
// GetBuffer (including by a Decoder) and not yet returned. Tests use it to
// find leaks, and node statistics report it.
func OutstandingBuffers() int64 {
	return outstanding.Load()
}
