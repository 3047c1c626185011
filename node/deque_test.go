package node

import "testing"

func TestDequeKeepsOrderAcrossGrowthAndWrap(t *testing.T) {
	var d deque[int]
	next, want := 0, 0
	for round := 0; round < 50; round++ {
		for i := 0; i < round%13+1; i++ {
			d.push(next)
			next++
		}
		for i := 0; i < round%7 && d.len() > 0; i++ {
			if v := d.pop(); v != want {
				t.Fatalf("pop %d, want %d", v, want)
			}
			want++
		}
	}
	for _, v := range d.drain() {
		if v != want {
			t.Fatalf("drain %d, want %d", v, want)
		}
		want++
	}
	if want != next || d.len() != 0 {
		t.Fatalf("lost elements: %d of %d", want, next)
	}
	allocs := testing.AllocsPerRun(100, func() { d.push(1); d.pop() })
	if allocs != 0 {
		t.Fatalf("steady push/pop allocates %v", allocs)
	}
}

func TestDequeGivesBackABurstsStorageWhenEmptied(t *testing.T) {
	var d deque[*int]
	for i := 0; i < 100000; i++ {
		d.push(new(int))
	}
	for d.len() > 1 {
		d.pop()
	}
	if len(d.buf) < 100000 {
		t.Fatalf("storage %d while %d elements wait", len(d.buf), d.len())
	}
	d.pop()
	if d.buf != nil {
		t.Fatalf("an emptied deque keeps storage for %d elements", len(d.buf))
	}
	d.push(new(int)) // and works on
	if d.len() != 1 || d.pop() == nil {
		t.Fatal("deque broken after giving its storage back")
	}
}
