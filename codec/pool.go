package codec

import (
	"sync/atomic"

	"github.com/valyala/bytebufferpool"
)

// pool is private so that chirp's message sizes calibrate it, not the small
// buffers of other bytebufferpool users in the same process (gnet is one).
var pool bytebufferpool.Pool

// outstanding counts buffers handed out by GetBuffer and not yet returned.
var outstanding atomic.Int64

// GetBuffer returns an empty buffer from the pool. Return it with PutBuffer
// once nothing refers to its bytes any more.
func GetBuffer() *bytebufferpool.ByteBuffer {
	outstanding.Add(1)
	return pool.Get()
}

// PutBuffer returns b to the pool; b must not be used afterwards. A nil b is
// ignored. Returning a buffer twice corrupts the pool, as with any pool.
func PutBuffer(b *bytebufferpool.ByteBuffer) {
	if b == nil {
		return
	}
	outstanding.Add(-1)
	pool.Put(b)
}

// OutstandingBuffers reports how many buffers are out of the pool: taken with
// GetBuffer (including by a Decoder) and not yet returned. Tests use it to
// find leaks, and node statistics report it.
func OutstandingBuffers() int64 {
	return outstanding.Load()
}
