package slots_test

import (
	"errors"
	"fmt"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/slots"
)

// The reader acquires a slot per frame and pauses when none is left; the
// release that frees a slot of a full pool tells it to resume.
func ExamplePool() {
	p, _ := slots.New(1) // one slot: a synchronous node
	s, _ := p.Acquire()
	s.Own(codec.GetBuffer()) // the frame's buffer
	if _, err := p.Acquire(); errors.Is(err, slots.ErrExhausted) {
		fmt.Println("pause reading")
	}
	if resume, _ := p.Release(s); resume {
		fmt.Println("resume reading")
	}
	// Output:
	// pause reading
	// resume reading
}
