// Package perf measures chirp in passes per second and compares the figures
// with what the machine can do at all.
//
// A pass is one message sent to an echo node and its echo received back,
// matched by identity. Passes run one at a time (single) or several at a
// time (pooled: 16 or 64 messages in flight), with both nodes synchronous or
// both asynchronous, and with payloads from 5 bytes to 64 KiB, in plaintext
// and (Options.TLS) over TLS, both nodes encrypting loopback as libchirp's
// always-encrypt does; each TLS figure is compared with its plaintext twin.
// With Options.Relay, relay sync single 5B and relay async pooled16 5B send
// their passes through a relay (StartRelay, a node.Router of the same mode)
// in front of the echo peer, there and back, each compared with the same
// scenario direct.
// Beside them the harness measures baselines: for every pair of messages in
// flight and payload size of the chirp scenarios, raw TCP echoes with
// another process (a goroutine per connection on each side, plain net.Conn:
// one at a time for single, pipelined for pooled, each payload written on
// its own and small echoes read through a bufio.Reader), and a round trip between
// two goroutines over channels. Each chirp figure is divided by the TCP
// baseline of its own in-flight count and size ("vs tcp"), measured in the
// same run; no figure from elsewhere enters the report.
//
// Both nodes handle received messages on their event loop by default
// (StyleInline: the echo sends the received message back as it is and the
// node releases it when that send finished, the client starts its next pass
// from its callbacks with SendOnLoop), which is how libchirp's C callbacks
// run and so the fair comparison with it. StyleWorkers measures the handler
// goroutine pool instead, where every send and release is handed to the
// loop.
//
// The pieces, from the bottom:
//
//   - Client drives passes through a local node (Client.Run): a count or a
//     duration, a number in flight, optional waiting for echoes. The chirp
//     command's send uses it too.
//   - StartEcho runs the echo node, of either style (the chirp command's
//     echo, and the in-process peer of tests and Go benchmarks).
//   - StartRelay runs a router node in front of other nodes (the chirp
//     command's relay, and the relay of the relay scenarios).
//   - Peer is where the echo node runs: a child process (StartProcess, which
//     parses "listening on PORT" from its stdout), this process
//     (InProcessEcho, InProcessTCPEcho) or an address given by the user.
//   - Run measures the scenarios of Options and returns a Report, which
//     prints as a table (WriteTable), JSON (WriteJSON) or an SVG bar chart
//     (WriteSVG).
//
// Every figure is the median of several timed runs after a warm-up, with
// minimum, maximum and their ratio, the spread. A failed pass (a send error,
// a missing echo) aborts its scenario and the error is reported; it never
// shows as a lower number. perf knows chirp only through package node.
//
// # Spread
//
// Neither node allocates per pass (so hardly any garbage collection runs
// during a measurement) and
// the event loop no longer hands its goroutine to another thread on every
// idle poll (see third_party/gnet), the likely cause of runs that were
// either fast or slow (the loop thread and a woken helper thread landing on
// one core or two, differently in each run). What remains is the operating
// system's: where the kernel places the two processes' threads
// (sharing a core serializes them; wake-ups pull a woken thread to the
// waker's core), other processes and a hypervisor taking CPU time, and
// frequency changes. A 400 ms run spans thousands of round trips, so timer
// granularity does not matter. On a quiet machine pooled scenarios are
// expected to stay within 1.3x; sync single, bound by two wake-ups per round trip, and
// anything measured while other work runs spread wider. A spread above 1.3x
// says the figures of that run are not to be compared closely.
//
// Placement (Place, chirp bench -placement) takes the kernel's part out:
// with the harness and its peers pinned to one CPU, or to one each, the
// single-in-flight scenarios, which on a virtual machine run two to four
// times as fast on one CPU as on two, stop moving between the two.
package perf
