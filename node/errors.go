package node

import "errors"

// Sentinel errors, one per libchirp error kind. Errors returned by this
// package wrap one of them with the operation and what happened; test with
// errors.Is.
//
// An error that finishes a send names the remote once, at its start
// ("send to 127.0.0.1:2998: chirp: cannot connect: connection refused");
// what follows never names it again. Errors of connections that no send
// waits for go to the Logger, with the peer as an attribute of their own.
var (
	// ErrTimeout: a connect (TCP, plus the peer's handshake) or a send
	// (write, plus the ACK in synchronous mode) took longer than the timeout.
	ErrTimeout = errors.New("chirp: timeout")
	// ErrCannotConnect: the remote refused or could not be reached, or
	// hung up before its chirp handshake.
	ErrCannotConnect = errors.New("chirp: cannot connect")
	// ErrWrite: writing the chirp handshake failed.
	ErrWrite = errors.New("chirp: write error")
	// ErrProtocol: the peer broke the protocol, or a frame write failed.
	// The message may or may not have arrived.
	ErrProtocol = errors.New("chirp: protocol error")
	// ErrConnLost: the peer closed or reset the connection while a message
	// was being sent or waited for its ACK. The message may or may not have
	// arrived; a peer hangs up, for one, on a message above its
	// MaxMessageSize. A peer may close an idle connection at any time; that
	// is no error and fails no send.
	ErrConnLost = errors.New("chirp: connection lost")
	// ErrTLS: TLS setup, handshake or record failure; a peer that speaks
	// plaintext where TLS is expected or the reverse; a peer that needs
	// TLS when the node has no credentials.
	ErrTLS = errors.New("chirp: TLS error")
	// ErrShutdown: the node is closing or closed, or the idle remote was
	// garbage-collected with the message still queued.
	ErrShutdown = errors.New("chirp: shutdown")
	// ErrInUse: the message is still being sent.
	ErrInUse = errors.New("chirp: message in use")
	// ErrValue: an invalid configuration value or argument.
	ErrValue = errors.New("chirp: invalid value")
	// ErrAddrInUse: the listening address is taken.
	ErrAddrInUse = errors.New("chirp: address in use")
	// ErrTooLarge: a frame above the receiver's maximum message size
	// (libchirp's CH_ENOMEM).
	ErrTooLarge = errors.New("chirp: message too large")
	// ErrNotHeld: Release on a message that holds no slot (never had one,
	// or was released already).
	ErrNotHeld = errors.New("chirp: message holds no slot")
	// ErrQueueFull: SendAsync, SendOnLoop or Go found Config.MaxPending
	// sends pending; retry when some finished (Send waits instead).
	ErrQueueFull = errors.New("chirp: send queue full")
	// ErrResolve: a host name did not resolve to an address, or not in time.
	ErrResolve = errors.New("chirp: cannot resolve host name")
)

// Answers between Send and the loop when a send's context ended; they never
// reach a user. errWithdrawn is also what the withdrawn send finishes with.
var (
	errWithdrawn = errors.New("chirp: send withdrawn: its context ended before it was written")
	errKept      = errors.New("chirp: send not withdrawn: it was written")
)
