package tlsconn

import "errors"

// Sentinel errors. Returned errors wrap one of them with the reason; test
// for them with errors.Is.
var (
	// ErrCredentials: the combined PEM file is unreadable or unusable.
	ErrCredentials = errors.New("unusable TLS credentials")
	// ErrHandshake: the TLS handshake failed or did not finish in time
	// (libchirp's CH_TLS_ERROR).
	ErrHandshake = errors.New("handshake failed")
	// ErrTimeout: the handshake did not finish within its timeout. Such an
	// error is an ErrHandshake too.
	ErrTimeout = errors.New("timed out")
	// ErrNotTLS: the peer's first bytes are no TLS record: it speaks
	// plaintext. Such an error is an ErrHandshake too.
	ErrNotTLS = errors.New("peer does not speak TLS")
	// ErrRecord: a record from the peer could not be decrypted or was an
	// alert (libchirp's CH_TLS_ERROR).
	ErrRecord = errors.New("reading failed")
	// ErrNotReady: the handshake has not finished yet.
	ErrNotReady = errors.New("TLS handshake not finished")
	// ErrClosed: the session was closed.
	ErrClosed = errors.New("TLS session closed")
)
