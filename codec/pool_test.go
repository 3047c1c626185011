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
