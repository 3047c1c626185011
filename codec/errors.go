package codec

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them with the
// field, value and limit involved; test for them with errors.Is.
var (
	// ErrProtocol is what every rule violation by the peer also is: the
	// connection should be closed with libchirp's CH_PROTOCOL_ERROR.
	ErrProtocol = errors.New("chirp protocol error")

	// ErrTooLarge: header_len + data_len exceeds the maximum message size.
	// It is not an ErrProtocol: libchirp reports it as CH_ENOMEM.
	ErrTooLarge = errors.New("frame larger than the maximum message size")

	// ErrAckWithBody: an ACK frame carries header or data bytes.
	ErrAckWithBody = fmt.Errorf("ACK frame with a body: %w", ErrProtocol)

	// ErrNoopWithBody: a NOOP frame carries header or data bytes.
	ErrNoopWithBody = fmt.Errorf("NOOP frame with a body: %w", ErrProtocol)

	// ErrControlWithReqAck: an ACK or NOOP frame also asks for an ACK.
	ErrControlWithReqAck = fmt.Errorf("ACK or NOOP frame with REQ_ACK: %w", ErrProtocol)

	// ErrShortBuffer: a parse function got fewer bytes than the item needs.
	ErrShortBuffer = errors.New("buffer too short")
)
