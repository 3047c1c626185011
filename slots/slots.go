// Package slots bounds how many received messages one connection may hold at
// once: each message occupies a slot from the connection's pool until the
// application releases it, and a full pool tells the reader to stop reading.
// It knows neither sockets nor the wire format; it only keeps the pooled
// buffer of each message so that releasing the slot returns it.
package slots

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/gochirp/chirp/codec"
	"github.com/valyala/bytebufferpool"
)

// MaxSlots is the largest pool size, as in libchirp.
const MaxSlots = 32

// Sentinel errors; test for them with errors.Is.
var (
	// ErrExhausted: every slot is taken; stop reading until one is released.
	ErrExhausted = errors.New("slots: all slots in use")
	// ErrDoubleRelease: the slot was already free.
	ErrDoubleRelease = errors.New("slots: slot released twice")
	// ErrForeignSlot: the slot does not belong to this pool.
	ErrForeignSlot = errors.New("slots: slot belongs to another pool")
	// ErrBadSize: the pool size is outside 1..MaxSlots.
	ErrBadSize = errors.New("slots: pool size out of range")
)

// Pool is the slot pool of one connection. It is not safe for concurrent use:
// it belongs to the event loop that reads the connection, and only code
// running on that loop may call its methods (a Release requested from another
// goroutine must be handed to the loop first).
type Pool struct {
	slots [MaxSlots]Slot
	size  int
	free  uint32 // bit i set: slots[i] is free
}

// Slot is one place for a received message. A slot is only ever handed out
// by its Pool's Acquire and given back with Release.
type Slot struct {
	pool  *Pool
	index int
	buf   *bytebufferpool.ByteBuffer
}

// New returns a pool of n free slots; n must be in 1..MaxSlots.
func New(n int) (*Pool, error) {
	if n < 1 || n > MaxSlots {
		return nil, fmt.Errorf("slots: size %d not in 1..%d: %w", n, MaxSlots, ErrBadSize)
	}
	p := &Pool{size: n, free: uint32(1<<n - 1)}
	for i := range p.slots[:n] {
		p.slots[i] = Slot{pool: p, index: i}
	}
	return p, nil
}

// Acquire takes the free slot with the lowest index. When none is free it
// returns ErrExhausted, and the caller should stop reading the connection
// until Release says to resume.
func (p *Pool) Acquire() (*Slot, error) {
	if p.free == 0 {
		return nil, ErrExhausted // unwrapped: a flooded reader may hit it often
	}
	i := bits.TrailingZeros32(p.free)
	p.free &^= 1 << i
	return &p.slots[i], nil
}

// Release frees s and returns the buffer it owns to the pool. resume is true
// when the pool was full before this release: a reader paused for want of a
// slot should resume. Releasing a free slot or a slot of another pool is an
// error and changes nothing, so no buffer is returned twice.
func (p *Pool) Release(s *Slot) (resume bool, err error) {
	if s == nil || s.index < 0 || s.index >= p.size || &p.slots[s.index] != s {
		return false, fmt.Errorf("slots: release of %s: %w", describe(s), ErrForeignSlot)
	}
	if !s.held() {
		return false, fmt.Errorf("slots: release of %s: %w", describe(s), ErrDoubleRelease)
	}
	resume = p.free == 0
	codec.PutBuffer(s.buf)
	s.buf = nil
	p.free |= 1 << s.index
	return resume, nil
}

// InUse is the number of acquired slots.
func (p *Pool) InUse() int { return p.size - bits.OnesCount32(p.free) }

// Size is the number of slots.
func (p *Pool) Size() int { return p.size }

// Full reports whether every slot is in use.
func (p *Pool) Full() bool { return p.free == 0 }

// Index is the slot's position in its pool, 0..Size()-1.
func (s *Slot) Index() int { return s.index }

// Own gives b to the slot, which returns it to the buffer pool on Release. A
// buffer the slot already owned is returned at once. Own is meant for an
// acquired slot; on a free slot b is returned at once, as nothing would
// release it.
func (s *Slot) Own(b *bytebufferpool.ByteBuffer) {
	if !s.held() {
		codec.PutBuffer(b)
		return
	}
	if s.buf != b {
		codec.PutBuffer(s.buf)
		s.buf = b
	}
}

// held reports whether s is acquired.
func (s *Slot) held() bool { return s.pool != nil && s.pool.free&(1<<s.index) == 0 }

// describe names s in error messages.
func describe(s *Slot) string {
	if s == nil {
		return "nil slot"
	}
	return fmt.Sprintf("slot %d", s.index)
}
