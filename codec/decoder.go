package codec

import (
	"slices"

	"github.com/valyala/bytebufferpool"
)

// Event tells the caller of Decoder.Next what it has just completed.
type Event uint8

const (
	// EventNone: all bytes given were consumed and more are needed.
	EventNone Event = iota
	// EventHandshake: the peer's handshake is complete; see Decoder.Handshake.
	EventHandshake
	// EventHeader: a 27-byte frame header was parsed and passed Check; no
	// body byte has been read. See Decoder.Header.
	EventHeader
	// EventFrame: a whole frame is complete; take it with Decoder.Frame.
	EventFrame
)

// bodyReserve caps what a decoder reserves before the body bytes arrive, so
// that a peer claiming 100 MiB costs memory only as it sends them.
const bodyReserve = 64 << 10

// state is where the decoder stands in the stream.
type state uint8

const (
	// stateHandshake: the stream opens with the peer's 18-byte handshake.
	// libchirp closes the connection unless it arrives in one read; the
	// decoder accepts it in pieces, which costs nothing and suits TLS records.
	stateHandshake state = iota
	// stateHeader: gathering the 27 bytes of the next frame header. The
	// complete header is checked before the caller hears of it, so a bad
	// frame never gets a byte of its body buffered.
	stateHeader
	// stateBody: the header was reported with EventHeader and the caller came
	// back for the body (it holds a slot by now). header_len + data_len bytes
	// are gathered into one pooled buffer that grows as they arrive.
	stateBody
)

// Frame is a complete received frame. Header and Data alias Buf.B, the
// header bytes followed by the data bytes in one pooled buffer; they stay
// valid until the buffer is returned with Free or PutBuffer. A frame without
// body has nil Buf, Header and Data.
type Frame struct {
	FrameHeader
	Header, Data []byte
	Buf          *bytebufferpool.ByteBuffer
}

// Free returns the frame's buffer to the pool and clears Header and Data.
// Calling it again does nothing.
func (f *Frame) Free() {
	PutBuffer(f.Buf)
	f.Buf, f.Header, f.Data = nil, nil, nil
}

// Decoder reads one direction of a chirp connection: the handshake, then
// frames. It is fed whatever bytes arrive, in pieces of any size, and stops at
// each event so that the caller can act between header and body (acquire a
// slot, or stop reading when none is free). The zero value is ready to use,
// with DefaultMaxMessageSize. A Decoder is not safe for concurrent use; it
// belongs to whoever reads the connection.
type Decoder struct {
	maxMessageSize uint64
	state          state
	err            error // sticky: once set, the stream is broken

	// partial gathers the handshake or frame header; fill bytes are valid.
	partial [FrameHeaderSize]byte
	fill    int

	handshake Handshake
	header    FrameHeader
	body      *bytebufferpool.ByteBuffer // body being gathered in stateBody
	frame     Frame                      // the completed frame until Frame takes it
}

// NewDecoder returns a decoder that expects a handshake first and rejects
// frames whose header_len + data_len exceeds maxMessageSize (0 means
// DefaultMaxMessageSize).
func NewDecoder(maxMessageSize uint64) *Decoder {
	return &Decoder{maxMessageSize: maxMessageSize} // Check maps 0 to the default
}

// Next consumes bytes from p up to the first event and returns how many it
// consumed; the caller passes the rest again on the next call. With
// EventNone and no error, all of p was consumed. After EventHeader, calling
// Next again reads the body; for a frame without body that call yields
// EventFrame and consumes nothing. A completed frame not taken with Frame
// before the next call is returned to the pool.
//
// The error wraps a sentinel of this package (see Check), and n then counts
// the bytes of the rejected frame header. Once Next has returned an error the
// stream is broken: every later call returns the same error and consumes
// nothing, until Reset.
func (d *Decoder) Next(p []byte) (n int, ev Event, err error) {
	if d.err != nil {
		return 0, EventNone, d.err
	}
	d.frame.Free()
	switch d.state {
	case stateHandshake:
		n, done := d.gather(p, HandshakeSize)
		if !done {
			return n, EventNone, nil
		}
		d.handshake, _ = ParseHandshake(d.partial[:])
		d.state = stateHeader
		return n, EventHandshake, nil
	case stateHeader:
		n, done := d.gather(p, FrameHeaderSize)
		if !done {
			return n, EventNone, nil
		}
		d.header, _ = ParseFrameHeader(d.partial[:])
		if err := d.header.Check(d.maxMessageSize); err != nil {
			d.err = err
			return n, EventNone, err
		}
		d.state = stateBody
		return n, EventHeader, nil
	default:
		return d.readBody(p)
	}
}

// gather copies bytes from p into partial until it holds size bytes, and
// reports how many it took and whether partial is complete.
func (d *Decoder) gather(p []byte, size int) (int, bool) {
	n := copy(d.partial[d.fill:size], p)
	d.fill += n
	if d.fill < size {
		return n, false
	}
	d.fill = 0
	return n, true
}

func (d *Decoder) readBody(p []byte) (int, Event, error) {
	size := d.header.BodyLen()
	if size == 0 {
		d.frame = Frame{FrameHeader: d.header}
		d.state = stateHeader
		return 0, EventFrame, nil
	}
	if d.body == nil {
		d.body = GetBufferFor(size)
		d.body.B = slices.Grow(d.body.B[:0], min(size, bodyReserve))
	}
	n := min(size-len(d.body.B), len(p))
	d.body.B = append(d.body.B, p[:n]...)
	if len(d.body.B) < size {
		return n, EventNone, nil
	}
	b := d.body.B
	hl := int(d.header.HeaderLen)
	d.frame = Frame{FrameHeader: d.header, Header: b[:hl:hl], Data: b[hl:], Buf: d.body}
	d.body = nil
	d.state = stateHeader
	return n, EventFrame, nil
}

// Handshake returns the peer's handshake; valid after EventHandshake.
func (d *Decoder) Handshake() Handshake { return d.handshake }

// Header returns the current frame header; valid after EventHeader and
// EventFrame.
func (d *Decoder) Header() FrameHeader { return d.header }

// Frame hands over the frame completed by EventFrame. Its buffer now belongs
// to the caller, who must return it with f.Free or PutBuffer. A second call
// for the same frame returns its FrameHeader without body.
func (d *Decoder) Frame() Frame {
	f := d.frame
	d.frame.Buf, d.frame.Header, d.frame.Data = nil, nil, nil
	return f
}

// Reset returns the decoder to its initial state, expecting a handshake, as
// for a new connection. It clears a sticky error and returns the buffers it
// holds (a partial body, a frame not taken) to the pool.
func (d *Decoder) Reset() {
	PutBuffer(d.body)
	d.frame.Free()
	*d = Decoder{maxMessageSize: d.maxMessageSize}
}

// Close returns the buffers the decoder holds to the pool; call it when the
// connection ends. The decoder is then as after Reset.
func (d *Decoder) Close() { d.Reset() }
