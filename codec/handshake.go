package codec

import (
	"encoding/binary"
	"fmt"
)

// HandshakeSize is the length of the handshake each side sends first.
const HandshakeSize = 2 + IdentitySize

// Handshake is the first thing each side of a connection sends, once. Nothing
// in it is validated by libchirp: there is no magic and no version.
type Handshake struct {
	// Port is the sender's public listening port, the one peers dial. It is
	// not the TCP source port; remotes are keyed by it (docs/protocol.md §2.3).
	Port uint16
	// Identity is the sending node's identity.
	Identity Identity
}

// Append appends the 18 wire bytes of h to b and returns the extended slice.
// It does not allocate when b has room for them.
func (h Handshake) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, h.Port)
	return append(b, h.Identity[:]...)
}

// ParseHandshake parses the first HandshakeSize bytes of b. Longer input is
// fine, the rest is not looked at; shorter input gives an error wrapping
// ErrShortBuffer.
func ParseHandshake(b []byte) (Handshake, error) {
	if len(b) < HandshakeSize {
		return Handshake{}, fmt.Errorf("codec: handshake needs %d bytes, got %d: %w", HandshakeSize, len(b), ErrShortBuffer)
	}
	h := Handshake{Port: binary.BigEndian.Uint16(b)}
	copy(h.Identity[:], b[2:HandshakeSize])
	return h, nil
}
