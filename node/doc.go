// Package node is chirp for Go: brokerless message passing, wire-compatible
// with libchirp 1.x (C and Python nodes talk to it).
//
// A Node listens on one TCP port. To send, put an address and bytes into a
// Message and hand it to the node: it opens, handshakes, reuses and closes
// connections by itself. A received message carries where it came from, and
// the node that received it, so a reply is m.Reply: the message sent back
// with new Data, routed over the existing connection, with the same
// Identity. This is all a user must import.
//
//	server, err := node.Start(node.Config{
//		CertChainPEM: "node1.pem",
//		Handler: node.HandlerFunc(func(m *node.Message) {
//			_ = m.Reply(context.Background(), bytes.ToUpper(m.Data))
//		}),
//	})
//	...
//	m, err := node.NewMessage("db7.example.org:2998", []byte("hello"))
//	answer, err := client.Request(ctx, m)
//
// A handler reaches its node through the message (m.Reply, m.Node), never
// through a variable assigned from Start: a message can arrive before Start
// has returned.
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
// One combination stalls, in libchirp too: a synchronous node whose
// handler replies (m.Reply, or Send of the received message) cannot serve
// a peer that pipelines several messages on one connection, as
// asynchronous nodes do. The handler holds the connection's only slot
// until the reply is acknowledged, and the reply's ACK arrives behind the
// peer's next message, which waits for that slot: the reply fails with
// ErrTimeout and the connection is closed. So a server whose clients may
// be asynchronous should be asynchronous itself (Config.Asynchronous, the
// recommended configuration); a synchronous one must copy what it needs,
// release the received message, and then send a new message with the same
// Identity as the reply.
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
// Received messages are recycled, so receiving allocates nothing: with
// automatic release, once the node released a message itself and the
// handler returned (and a send made of it, a reply, finished), the node
// reuses the Message for a later one. The handler must therefore not keep
// the pointer, as it must not keep Header and Data; copy what it needs.
// A pointer stays the application's in the other cases, which never reuse
// the Message: a message the application released itself (Release or
// ReleaseOnLoop, so a second Release returns ErrNotHeld whenever it comes,
// never releasing another message), messages received with ManualRelease,
// answers of Request and RequestHeld, and copies handed out by Recv. A
// generation count cannot replace this rule: a stale pointer and the
// message reusing its struct are the same pointer, with nothing to compare
// a generation with.
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
// A handler that panics is recovered, as in net/http: the panic is logged
// with its stack and counted in Stats.HandlerPanics, the message is
// released, and the node goes on.
//
// Request sends a message and returns the answer with the same identity;
// the answering handler calls m.Reply.
//
// # Sending
//
// Send blocks until the send completed (or its context ended). SendAsync
// takes a callback and Go returns a Pending, so one goroutine can keep many
// sends in flight. All are safe from any goroutine. Code that already runs on
// the loop (inline handlers, completion callbacks) may use SendOnLoop and
// Message.ReleaseOnLoop instead, which skip the hand-off: the fastest echo is
// an inline handler with automatic release that sends the message back with
// SendOnLoop and returns. A message released while it is being sent keeps
// its slot until that send finished (then the node frees it, and reuses
// the Message).
//
// The sends a node holds, accepted and not finished, are bounded by
// Config.MaxPending (4096 by default), over all remotes, so a producer that
// outruns a slow or dead remote is pushed back instead of filling memory: at
// the bound Send and Request wait for room (as long as their context
// allows), and SendAsync, SendOnLoop and Go fail at once with ErrQueueFull.
//
// # Contexts, timeouts and deadlines
//
// A message's deadline is the deadline of the context it is sent with;
// there is no deadline field. When Send's ctx ends before any byte of the
// message was written (it was queued, or waiting for a connection), the
// send is withdrawn: Send returns ctx's error and the message may be sent
// again at once. A message already written cannot be called back: Send
// returns ctx's error and the send goes on, bounded by the node's Timeout
// (the message is in use, ErrInUse, until then). SendAsync and Go take no
// context: their sends are bounded by the node's Timeout alone, and
// Pending.Wait's context bounds only the wait.
//
// Config.Timeout is the node's own bound on each step (connect, write, the
// ACK of a synchronous send), as in libchirp; its expiry wraps ErrTimeout,
// never context.DeadlineExceeded. Request waits for its answer until ctx's
// deadline, however far, and uses the node's Timeout only when ctx has
// none: errors.Is(err, ErrTimeout) means the node's Timeout ended,
// errors.Is(err, context.DeadlineExceeded) the caller's deadline. Close(ctx)
// lets pending sends finish until ctx ends and fails the rest with
// ErrShutdown; its error says how many.
//
// # Addresses
//
// NewMessage takes "host:port" with an IP literal or a host name. A name
// is looked up at once, bounded by DefaultResolveTimeout
// (NewMessageContext and ResolveAddr take a context), and the message goes
// to its first IPv4 address, or its first IPv6 address if it has none. A
// name that does not resolve is ErrResolve.
//
// # Errors
//
// Errors wrap one sentinel per libchirp error kind (ErrTimeout,
// ErrCannotConnect, ErrConnLost, ErrTLS, ErrShutdown, ...), and those of
// the Go API (ErrQueueFull, ErrResolve, ErrInUse, ...); test them with
// errors.Is. A send's error names the remote once and then says what
// happened: "send to 127.0.0.1:2998: chirp: cannot connect: connection
// refused". A peer closing an idle connection is no error (the Logger
// gets it at Debug level); a peer breaking the protocol is logged at Info,
// a TLS failure at Warn.
//
// # Failures and bounds
//
// A send that cannot be delivered fails; it never waits without bound:
//
//   - A written message not acknowledged (synchronous) or not taken by the
//     kernel (asynchronous) within Timeout fails with ErrTimeout, and its
//     connection is closed.
//   - Queued messages of a remote that takes nothing (no handshake, no ACK,
//     no bytes read) fail within about 2×Timeout: 2×Timeout plus the
//     longest reconnect debounce (0.55 s), counted from the remote's last
//     progress or from the moment messages began to wait. A connect
//     that fails (refused, TLS, timed out) fails every queued message at
//     once. So a dead remote, or a frozen one whose kernel still accepts
//     connections, costs each send at most that long; libchirp instead
//     fails one queued message per reconnect attempt.
//   - After that, for the same 2×Timeout plus 0.55 s, sends to the remote
//     fail at once with the same error while it has no connection, so a
//     producer sending one message after the other is not held to one per
//     attempt either. Meanwhile the node keeps trying, at most once per
//     reconnect debounce; the first handshake ends this.
//   - A connection the node cannot write to for Timeout is closed: every
//     buffered write has that deadline, ACKs and NOOPs included. A peer
//     that asks for ACKs and does not read them is owed at most a few
//     hundred before the node stops reading it; it gets no more until it
//     reads, and is closed after Timeout.
//
// An ACK goes back on the connection its message arrived on while that
// connection is open (libchirp uses the remote's current connection, which
// the newest handshake sets); user messages follow libchirp's routing. On
// plaintext connections the port a peer announces in its handshake is not
// authenticated: a process on the same IP that announces another peer's
// port becomes that remote's current connection and receives the messages
// this node sends to it, though no longer the ACKs meant for the real
// peer. Where local processes are not trusted, use TLS (AlwaysEncrypt on
// loopback): then only holders of a certificate from the node's CA connect.
//
// # Routing
//
// A router sits between producers and workers: producer → router →
// worker, and the worker's reply back the same way. Router is such a
// node's Handler:
//
//	rt, err := node.NewRouter(worker1, worker2) // netip.AddrPort
//	router, err := node.Start(node.Config{Receive: node.ReceiveInline, Handler: rt})
//
// It forwards each received message as it is, same Identity, Header and
// Data, without a copy, and holds it (its slot) until the forward
// finished; only then is it released. In synchronous mode that carries
// libchirp's two promises across the hop:
//
//   - Throttling propagates: the producer's send completes when the router
//     released the message, which is when the worker released the
//     forward. A producer goes as fast as its workers, and no node in the
//     chain queues more than its slots.
//   - Failures propagate: a forward that fails (the worker is dead,
//     frozen or slow beyond Timeout) is never acknowledged. The router
//     frees the message's slot without the ACK, so the producer's send
//     fails with ErrTimeout within its own Timeout; it never succeeds for
//     a message no worker released.
//
// The reply finds its way back because the router keeps the origin of
// every forwarded identity: a message that arrives from the worker a
// message went to, with that message's identity, is its reply, and goes
// to the origin, held the same way until the producer released it. No
// header is added, so producers and workers see exactly what the other
// sent, and Request works end to end (the worker answers with m.Reply). A
// route is forgotten when its reply passed, when its forward failed, or
// the router's Timeout after the forward finished: a worker that releases
// first and replies later must do so within that window. Work goes to the
// least-loaded worker (fewest forwards in flight), ties in turn; a worker
// whose forward failed is passed over for the router's Timeout while
// another is left, since a dead worker fails at once and would otherwise
// look the least loaded.
//
// Keep the router synchronous if its producers are: an asynchronous router
// completes a forward when it is written, so the release reaches the
// producer before any worker saw the message. Workers may be asynchronous
// behind a synchronous router: the router still asks for the ACK, so the
// producer's send completes when the worker released the message; but a
// reply from an asynchronous worker asks for no ACK, so a reply lost on
// its way back is noticed by nobody but the waiting Request, which times
// out. A synchronous router has one slot per connection and one send in
// flight per worker: it forwards at most one message per producer
// connection at a time, and more producers (connections) keep more
// workers busy. The chirp command's relay is this router.
//
// # TLS
//
// As libchirp, a node encrypts every connection except those to exactly
// 127.0.0.1 and ::1 (text match: 127.0.0.2 and ::ffff:127.0.0.1 are
// encrypted), unless DisableEncryption is set. Config.CertChainPEM names a
// file with the private key, the node's certificate and the CA certificate
// (make them with `chirp certs`). Without it the node still starts, and
// refuses every peer that needs TLS, both ways, with ErrTLS: nothing goes
// out in plaintext unless DisableEncryption says so. Peers are accepted
// when their certificate
// chains to one in that file, host names are not checked, and both sides
// present certificates. Go and C libchirp agree on TLS 1.3 (OpenSSL 1.1.1
// or later on the C side). All cryptography is Go's crypto/tls.
package node
