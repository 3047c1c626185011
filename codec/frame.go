package codec

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
)

const (
	// IdentitySize is the length of node and message identities.
	IdentitySize = 16
	// FrameHeaderSize is the length of the fixed part of every frame.
	FrameHeaderSize = IdentitySize + 4 + 4 + 2 + 1
	// DefaultMaxMessageSize is the largest header_len + data_len accepted
	// (libchirp's CH_MAX_MSG_SIZE). Exactly this size is accepted.
	DefaultMaxMessageSize = 100 << 20
)

// Identity is an opaque 16-byte node or message identity.
type Identity [IdentitySize]byte

// String returns the identity as 32 lowercase hex digits.
func (id Identity) String() string { return hex.EncodeToString(id[:]) }

// Format prints the identity's 16 bytes as hex for %v, %s and %x (32
// lowercase digits, as String), %X (upper case) and %q (quoted); other verbs
// and %#v print the byte array. Without it %x would hex-encode the String.
func (id Identity) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, fmt.FormatString(f, verb), [IdentitySize]byte(id))
	case verb == 'v' || verb == 's' || verb == 'q':
		fmt.Fprintf(f, fmt.FormatString(f, verb), id.String())
	case verb == 'x' || verb == 'X':
		fmt.Fprintf(f, fmt.FormatString(f, verb), id[:])
	default:
		fmt.Fprintf(f, fmt.FormatString(f, verb), [IdentitySize]byte(id))
	}
}

// IsZero reports whether all bytes are zero, as in a NOOP frame.
func (id Identity) IsZero() bool { return id == Identity{} }

// Type holds the type bits of a frame. A user message has REQ_ACK or no bit
// set; bits this package does not know are kept and passed on, as libchirp
// delivers such frames as normal messages.
type Type uint8

const (
	// ReqAck asks the receiver for an ACK once it releases the message
	// (sent by a synchronous node).
	ReqAck Type = 0x01
	// Ack acknowledges the message whose identity the frame repeats.
	Ack Type = 0x02
	// Noop is an idle probe; it has no effect beyond refreshing timestamps.
	Noop Type = 0x04
)

var typeNames = [...]struct {
	bit  Type
	name string
}{{ReqAck, "REQ_ACK"}, {Ack, "ACK"}, {Noop, "NOOP"}}

// String names the set bits joined by "|", lowest first, with unknown bits as
// one hex number at the end: "0" (plain message), "REQ_ACK", "ACK|0x10".
func (t Type) String() string {
	if t == 0 {
		return "0"
	}
	var sb strings.Builder
	for _, n := range typeNames {
		if t&n.bit == 0 {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		sb.WriteString(n.name)
		t &^= n.bit
	}
	if t != 0 {
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		fmt.Fprintf(&sb, "0x%02x", uint8(t))
	}
	return sb.String()
}

// control reports whether t is an ACK or NOOP, frames that must be empty.
func (t Type) control() bool { return t&(Ack|Noop) != 0 }

// FrameHeader is the fixed 27-byte start of a frame. On the wire the fields
// come in the order identity, serial, data_len, header_len, type: data_len
// before header_len, which is not the order of libchirp's C struct.
type FrameHeader struct {
	// Identity of the message; an ACK repeats the acknowledged message's
	// identity, a NOOP has the zero identity.
	Identity Identity
	// Serial counts frames per remote on the sending node.
	Serial uint32
	// DataLen is the number of data bytes after the header bytes.
	DataLen uint32
	// HeaderLen is the number of header bytes right after the frame header.
	HeaderLen uint16
	// Type holds the REQ_ACK, ACK and NOOP bits.
	Type Type
}

// Append appends the 27 wire bytes of h to b and returns the extended slice.
// It does not allocate when b has room for them.
func (h *FrameHeader) Append(b []byte) []byte {
	b = append(b, h.Identity[:]...)
	b = binary.BigEndian.AppendUint32(b, h.Serial)
	b = binary.BigEndian.AppendUint32(b, h.DataLen)
	b = binary.BigEndian.AppendUint16(b, h.HeaderLen)
	return append(b, byte(h.Type))
}

// ParseFrameHeader parses the first FrameHeaderSize bytes of b. It does not
// check the result; see Check. Shorter input gives an error wrapping
// ErrShortBuffer.
func ParseFrameHeader(b []byte) (FrameHeader, error) {
	if len(b) < FrameHeaderSize {
		return FrameHeader{}, fmt.Errorf("codec: frame header needs %d bytes, got %d: %w", FrameHeaderSize, len(b), ErrShortBuffer)
	}
	var h FrameHeader
	copy(h.Identity[:], b)
	h.Serial = binary.BigEndian.Uint32(b[16:])
	h.DataLen = binary.BigEndian.Uint32(b[20:])
	h.HeaderLen = binary.BigEndian.Uint16(b[24:])
	h.Type = Type(b[26])
	return h, nil
}

// BodyLen is the number of bytes that follow the frame header:
// HeaderLen + DataLen.
func (h *FrameHeader) BodyLen() int { return int(h.bodyLen()) }

func (h *FrameHeader) bodyLen() uint64 { return uint64(h.HeaderLen) + uint64(h.DataLen) }

// Check applies the receiver's rules of docs/protocol.md §1.4 to h, before any body
// byte is read. maxMessageSize limits HeaderLen + DataLen (summed in 64 bits,
// unlike libchirp, whose 32-bit sum wraps); 0 means DefaultMaxMessageSize. An
// ACK or NOOP must have no body and no REQ_ACK bit. Unknown type bits pass.
// The error wraps ErrTooLarge, ErrAckWithBody, ErrNoopWithBody or
// ErrControlWithReqAck.
func (h *FrameHeader) Check(maxMessageSize uint64) error {
	if maxMessageSize == 0 {
		maxMessageSize = DefaultMaxMessageSize
	}
	if body := h.bodyLen(); body > maxMessageSize {
		return fmt.Errorf("codec: frame header_len=%d + data_len=%d = %d exceeds limit %d: %w",
			h.HeaderLen, h.DataLen, body, maxMessageSize, ErrTooLarge)
	}
	if !h.Type.control() {
		return nil
	}
	if h.bodyLen() != 0 {
		// A frame with both bits counts as a NOOP, as in libchirp's dispatch.
		sentinel := ErrAckWithBody
		if h.Type&Noop != 0 {
			sentinel = ErrNoopWithBody
		}
		return fmt.Errorf("codec: frame type=%v header_len=%d data_len=%d, limit 0 for ACK and NOOP: %w",
			h.Type, h.HeaderLen, h.DataLen, sentinel)
	}
	if h.Type&ReqAck != 0 {
		return fmt.Errorf("codec: frame type=%v (0x%02x), REQ_ACK not allowed with ACK or NOOP: %w",
			h.Type, uint8(h.Type), ErrControlWithReqAck)
	}
	return nil
}

// FrameLen is the wire length of a frame with the given header and data
// lengths.
func FrameLen(headerLen, dataLen int) int { return FrameHeaderSize + headerLen + dataLen }

// AppendFrame appends a whole frame to b: h with its HeaderLen and DataLen
// taken from the slices, then header, then data. It does not allocate when b
// has room for FrameLen(len(header), len(data)) more bytes. Lengths that the
// wire cannot express (header over 65535 bytes, data of 4 GiB or more) are a
// programming error and panic; incoming messages are bounded far below that.
func AppendFrame(b []byte, h FrameHeader, header, data []byte) []byte {
	if len(header) > math.MaxUint16 || uint64(len(data)) > math.MaxUint32 {
		panic(fmt.Sprintf("codec: AppendFrame: header_len=%d (limit %d) or data_len=%d (limit %d) too large for the wire",
			len(header), math.MaxUint16, len(data), uint64(math.MaxUint32)))
	}
	h.HeaderLen = uint16(len(header))
	h.DataLen = uint32(len(data))
	b = h.Append(b)
	b = append(b, header...)
	return append(b, data...)
}
