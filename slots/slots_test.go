package slots

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gochirp/chirp/codec"
)

func mustNew(t *testing.T, n int) *Pool {
	t.Helper()
	p, err := New(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewAcceptsOneToThirtyTwoSlots(t *testing.T) {
	for _, n := range []int{1, 16, MaxSlots} {
		p := mustNew(t, n)
		if p.Size() != n || p.InUse() != 0 || p.Full() {
			t.Errorf("New(%d): Size %d InUse %d Full %v", n, p.Size(), p.InUse(), p.Full())
		}
	}
}

func TestNewRejectsSizeOutOfRange(t *testing.T) {
	for _, n := range []int{-1, 0, MaxSlots + 1} {
		p, err := New(n)
		if p != nil || !errors.Is(err, ErrBadSize) {
			t.Errorf("New(%d) = %v, %v; want nil, ErrBadSize", n, p, err)
			continue
		}
		if want := fmt.Sprintf("size %d not in 1..32", n); !strings.Contains(err.Error(), want) {
			t.Errorf("New(%d) error %q, want it to say %q", n, err, want)
		}
	}
}

func TestAcquireExhaustsThePool(t *testing.T) {
	p := mustNew(t, 3)
	seen := map[int]bool{}
	for i := range 3 {
		s, err := p.Acquire()
		if err != nil {
			t.Fatalf("Acquire %d: %v", i, err)
		}
		if seen[s.Index()] || s.Index() < 0 || s.Index() >= 3 {
			t.Fatalf("Acquire %d gave index %d, seen %v", i, s.Index(), seen)
		}
		seen[s.Index()] = true
		if p.InUse() != i+1 {
			t.Fatalf("InUse = %d after %d acquires", p.InUse(), i+1)
		}
	}
	if !p.Full() {
		t.Fatal("Full = false with every slot taken")
	}
	if s, err := p.Acquire(); s != nil || !errors.Is(err, ErrExhausted) {
		t.Fatalf("Acquire on a full pool = %v, %v; want nil, ErrExhausted", s, err)
	}
}

func TestReleaseSignalsResumeOnlyWhenPoolWasFull(t *testing.T) {
	p := mustNew(t, 2)
	a, _ := p.Acquire()
	b, _ := p.Acquire()
	resume, err := p.Release(a)
	if err != nil || !resume {
		t.Fatalf("release from a full pool = %v, %v; want resume", resume, err)
	}
	resume, err = p.Release(b)
	if err != nil || resume {
		t.Fatalf("release from a pool with a free slot = %v, %v; want no resume", resume, err)
	}
	if p.InUse() != 0 {
		t.Fatalf("InUse = %d after releasing all", p.InUse())
	}
}

func TestReleasedSlotIsAcquiredAgain(t *testing.T) {
	p := mustNew(t, 1)
	a, _ := p.Acquire()
	p.Release(a)
	b, err := p.Acquire()
	if err != nil || b != a {
		t.Fatalf("Acquire after release = %p, %v; want the released slot %p", b, err, a)
	}
}

func TestReleaseReturnsOwnedBuffer(t *testing.T) {
	before := codec.OutstandingBuffers()
	p := mustNew(t, 2)
	s, _ := p.Acquire()
	s.Own(codec.GetBuffer())
	if codec.OutstandingBuffers() != before+1 {
		t.Fatalf("outstanding %d, want 1", codec.OutstandingBuffers()-before)
	}
	if _, err := p.Release(s); err != nil {
		t.Fatal(err)
	}
	if got := codec.OutstandingBuffers() - before; got != 0 {
		t.Fatalf("%d buffers outstanding after release, want 0", got)
	}
}

func TestOwnReplacesAndReturnsThePreviousBuffer(t *testing.T) {
	before := codec.OutstandingBuffers()
	p := mustNew(t, 1)
	s, _ := p.Acquire()
	s.Own(codec.GetBuffer())
	b := codec.GetBuffer()
	s.Own(b)
	s.Own(b) // the same buffer again is not a second owner
	if got := codec.OutstandingBuffers() - before; got != 1 {
		t.Fatalf("%d buffers outstanding, want the one owned", got)
	}
	p.Release(s)
	if got := codec.OutstandingBuffers() - before; got != 0 {
		t.Fatalf("%d buffers outstanding after release, want 0", got)
	}
}

func TestOwnOnFreeSlotReturnsBufferAtOnce(t *testing.T) {
	before := codec.OutstandingBuffers()
	p := mustNew(t, 1)
	s, _ := p.Acquire()
	p.Release(s)
	s.Own(codec.GetBuffer())
	if got := codec.OutstandingBuffers() - before; got != 0 {
		t.Fatalf("%d buffers outstanding, want 0", got)
	}
}

func TestDoubleReleaseFailsAndReturnsNoBufferTwice(t *testing.T) {
	before := codec.OutstandingBuffers()
	p := mustNew(t, 2)
	s, _ := p.Acquire()
	other, _ := p.Acquire()
	s.Own(codec.GetBuffer())
	p.Release(s)
	resume, err := p.Release(s)
	if resume || !errors.Is(err, ErrDoubleRelease) || !strings.Contains(err.Error(), "slot 0") {
		t.Fatalf("second release = %v, %v; want ErrDoubleRelease naming slot 0", resume, err)
	}
	if got := codec.OutstandingBuffers() - before; got != 0 {
		t.Fatalf("outstanding count %d, want 0 (a second Put would make it -1)", got)
	}
	if p.InUse() != 1 {
		t.Fatalf("InUse = %d, want 1 (other still held)", p.InUse())
	}
	p.Release(other)
}

func TestReleaseOfForeignSlotFails(t *testing.T) {
	p, q := mustNew(t, 2), mustNew(t, 2)
	theirs, _ := q.Acquire()
	mine, _ := p.Acquire()
	copied := *mine
	for name, s := range map[string]*Slot{"slot of another pool": theirs, "copy of a slot": &copied, "zero slot": {}, "nil": nil} {
		resume, err := p.Release(s)
		if resume || !errors.Is(err, ErrForeignSlot) {
			t.Errorf("%s: Release = %v, %v; want ErrForeignSlot", name, resume, err)
		}
	}
	if p.InUse() != 1 || q.InUse() != 1 {
		t.Fatalf("InUse p=%d q=%d after refused releases, want 1 and 1", p.InUse(), q.InUse())
	}
}

func TestAcquireAndReleaseDoNotAllocate(t *testing.T) {
	p := mustNew(t, MaxSlots)
	allocs := testing.AllocsPerRun(100, func() {
		s, _ := p.Acquire()
		p.Release(s)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per acquire and release", allocs)
	}
}
