// Package perf measures chirp in passes per second and compares the figures
// with what the machine can do at all.
//
// A pass is one message sent to an echo node and its echo received back,
// matched by identity. Passes run one at a time (single) or several at a
// time (pooled: 16 or 64 messages in flight), with both nodes synchronous or
// both asynchronous, and with payloads from 5 bytes to 64 KiB, in plaintext
// and (Options.TLS) over TLS, both nodes encrypting loopback as libchirp's
// always-encrypt does; each TLS figure is compared with its plaintext twin.
// Beside them the harness measures two baselines: a raw TCP ping-pong with
// another process (the physical floor of a single pass on loopback) and a
// round trip between two goroutines over channels.
//
// Both nodes handle received messages on their event loop by default
// (StyleInline: the echo sends the received message back as it is and
// releases it when that send finished, the client starts its next pass from
// its callbacks with SendOnLoop), which is how libchirp's C callbacks run
// and so the fair comparison with it. StyleWorkers measures the handler
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
//   - Peer is where the echo node runs: a child process (StartProcess, which
//     parses "listening on PORT" from its stdout), this process
//     (InProcessEcho, InProcessTCPEcho) or an address given by the user.
//   - Run measures the scenarios of Options and returns a Report, which
//     prints as a table (WriteTable), JSON (WriteJSON) or an SVG bar chart
//     (WriteSVG).
//
// Every figure is the median of several timed runs after a warm-up, with
// minimum and maximum. A failed pass (a send error, a missing echo) aborts
// its scenario and the error is reported; it never shows as a lower number.
// perf knows chirp only through package node.
package perf
