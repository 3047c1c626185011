package node

// deque is a FIFO ring buffer that reuses its storage, so a steady stream
// of push/pop does not allocate.
type deque[T any] struct {
	buf  []T
	head int
	n    int
}

func (d *deque[T]) len() int { return d.n }

func (d *deque[T]) push(v T) {
	if d.n == len(d.buf) {
		nb := make([]T, max(8, 2*len(d.buf)))
		for i := 0; i < d.n; i++ {
			nb[i] = d.buf[(d.head+i)%len(d.buf)]
		}
		d.buf, d.head = nb, 0
	}
	d.buf[(d.head+d.n)%len(d.buf)] = v
	d.n++
}

// pop removes the first element; the deque must not be empty.
func (d *deque[T]) pop() T {
	var zero T
	v := d.buf[d.head]
	d.buf[d.head] = zero
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	if d.n == 0 && len(d.buf) > maxKeptDeque {
		d.buf, d.head = nil, 0 // a burst's storage is not kept
	}
	return v
}

// maxKeptDeque is the capacity above which an emptied deque gives its
// storage back: a steady stream reuses up to this much, a burst (a remote's
// queue while it was unreachable) does not stay allocated.
const maxKeptDeque = 1024

// drain removes and returns all elements in order.
func (d *deque[T]) drain() []T {
	out := make([]T, 0, d.n)
	for d.n > 0 {
		out = append(out, d.pop())
	}
	return out
}

// remove takes out the first element that match accepts, keeping the order
// of the others; it reports whether there was one. O(n): for the rare
// withdrawal of a queued send.
func (d *deque[T]) remove(match func(T) bool) bool {
	for i := 0; i < d.n; i++ {
		if !match(d.buf[(d.head+i)%len(d.buf)]) {
			continue
		}
		for j := i; j < d.n-1; j++ {
			d.buf[(d.head+j)%len(d.buf)] = d.buf[(d.head+j+1)%len(d.buf)]
		}
		var zero T
		d.buf[(d.head+d.n-1)%len(d.buf)] = zero
		d.n--
		return true
	}
	return false
}
