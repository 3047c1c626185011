// Package node is chirp for Go: brokerless message passing, wire-compatible
// with libchirp 1.x (C and Python nodes talk to it).
//
// A Node listens on one TCP port. To send, put an address and bytes into a
// Message and hand it to the node: it opens, handshakes, reuses and closes
// connections by itself. A received message carries where it came from, so
// sending it back (with new Data) is a reply, routed over the existing
// connection, with the same Identity. This is all a user must import.
//
// # Two modes
//
// A synchronous node (the default) completes a send only when the remote
// application released the message: no message is lost without an error
// reaching the sender. One message per remote is in flight at a time, so
// throughput is bound by the round trip. An asynchronous node
// (Config.Asynchronous) completes a send when the bytes are in the kernel;
// many messages are in flight and throughput is bound by CPU. Mixed modes
// interoperate: the mode belongs to the sender.
//
// Rule of thumb: workers asynchronous, producers synchronous, routers
// synchronous if their producer is.
//
// # Slots and release
//
// Every connection has MaxSlots message slots (1 in synchronous mode, 16
// by default in asynchronous mode). A received message occupies one until
// it is released; its Header and Data live in the slot (no copy). With all
// slots taken the node stops reading that connection, and TCP pushes back
// on the sender: memory stays bounded whatever peers do. Releasing sends
// the ACK a synchronous sender waits for. By default release is automatic
// (after the handler returns, or in Recv); with Config.ManualRelease it is
// the application's job, and a forgotten release shows in Stats.SlotsInUse
// and a debug log line naming the message.
//
// # Receiving
//
//   - ReceiveWorkers (default): Config.Handler runs on a pool of Workers
//     goroutines, like an http.Handler. Pick it unless you know better.
//   - ReceiveQueue: Node.Recv hands messages to whoever asks, for pipeline
//     code.
//   - ReceiveInline: the handler runs on the event loop; fastest, but it
//     must never block.
//
// Request sends a message and returns the answer with the same identity.
//
// # Sending
//
// Send blocks until the send completed (or its context ended). SendAsync
// takes a callback and Go returns a Pending, so one goroutine can keep many
// sends in flight. All are safe from any goroutine. Code that already runs on
// the loop (inline handlers, completion callbacks) may use SendOnLoop and
// Message.ReleaseOnLoop instead, which skip the hand-off: the fastest echo is
// an inline handler that sends the message back with SendOnLoop and releases
// it in the completion. A message released while it is being sent keeps its
// slot until that send finished.
//
// # Errors
//
// Errors wrap one sentinel per libchirp error kind (ErrTimeout,
// ErrCannotConnect, ErrProtocol, ErrShutdown, ...), with the remote and the
// operation; test them with errors.Is.
//
// # TLS
//
// As libchirp, a node encrypts every connection except those to exactly
// 127.0.0.1 and ::1 (text match: 127.0.0.2 and ::ffff:127.0.0.1 are
// encrypted), unless DisableEncryption is set. Config.CertChainPEM names a
// file with the private key, the node's certificate and the CA certificate
// (make them with `chirp certs`); peers are accepted when their certificate
// chains to one in that file, host names are not checked, and both sides
// present certificates. Go and C libchirp agree on TLS 1.3 (OpenSSL 1.1.1
// or later on the C side). All cryptography is Go's crypto/tls.
package node
