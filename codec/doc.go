// Package codec turns the libchirp 1.x wire format into values and back: the
// 18-byte handshake, the 27-byte frame header and the header and data bytes
// that follow it, decoded as a stream into pooled buffers and encoded by
// appending to a caller's slice. It knows bytes only, never sockets,
// connections, slots or timers; deciding what a frame means is the caller's job.
//
// The layout is described in docs/protocol.md §1. All integers are big-endian, and
// the frame header's field order (identity, serial, data_len, header_len,
// type) is not the order of libchirp's C struct.
package codec
