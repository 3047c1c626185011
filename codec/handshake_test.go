package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// syncHandshake is the sender's handshake of the sync capture.
var syncHandshake = mustHex("107ca3178b1a200ea07df38bf47cd6355257")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestHandshakeIsPortThenIdentity(t *testing.T) {
	h, err := ParseHandshake(syncHandshake)
	if err != nil {
		t.Fatal(err)
	}
	if h.Port != 4220 {
		t.Errorf("Port = %d, want 4220 (big-endian 10 7c)", h.Port)
	}
	if got, want := h.Identity.String(), "a3178b1a200ea07df38bf47cd6355257"; got != want {
		t.Errorf("Identity = %s, want %s", got, want)
	}
	if got := h.Append(nil); !bytes.Equal(got, syncHandshake) {
		t.Errorf("Append = %x, want %x", got, syncHandshake)
	}
}

func TestParseHandshakeUsesOnlyFirstEighteenBytes(t *testing.T) {
	b := append(bytes.Clone(syncHandshake), 0xff, 0xff)
	h, err := ParseHandshake(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Append(nil); !bytes.Equal(got, syncHandshake) {
		t.Errorf("parsed %x from a longer buffer, want %x", got, syncHandshake)
	}
}

func TestParseHandshakeRejectsShortBuffer(t *testing.T) {
	_, err := ParseHandshake(syncHandshake[:HandshakeSize-1])
	if !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("err = %v, want ErrShortBuffer", err)
	}
	if want := "needs 18 bytes, got 17"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
}

func TestHandshakeAppendDoesNotAllocate(t *testing.T) {
	h := Handshake{Port: 1, Identity: Identity{1}}
	buf := make([]byte, 0, HandshakeSize)
	allocs := testing.AllocsPerRun(100, func() { buf = h.Append(buf[:0]) })
	if allocs != 0 {
		t.Fatalf("Append allocated %v times per call", allocs)
	}
	if len(buf) != HandshakeSize {
		t.Fatalf("Append wrote %d bytes, want %d", len(buf), HandshakeSize)
	}
}
