package node

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/slots"
)

// Defaults, as libchirp's.
const (
	DefaultPort           = 2998
	DefaultTimeout        = 5 * time.Second
	DefaultReuseTime      = 30 * time.Second
	DefaultBacklog        = 100
	DefaultBufferSize     = 65536
	DefaultMaxMessageSize = codec.DefaultMaxMessageSize
	DefaultAsyncSlots     = 16
	DefaultMaxPending     = 4096 // Config.MaxPending, a Go extension
)

// AnyPort as Config.Port listens on a free port chosen by the system (a Go
// extension; libchirp needs a fixed port above 1024). Node.Port reports it.
const AnyPort = -1

// Config holds a node's settings. The zero value is libchirp's default
// configuration: port 2998 on all IPv4 and IPv6 addresses, synchronous,
// 5 s timeout, 30 s reuse time, encryption on. Without CertChainPEM such a
// node talks only to peers at 127.0.0.1 and ::1 (see DisableEncryption).
type Config struct {
	// Port to listen on: 1025..65535, 0 for DefaultPort, or AnyPort.
	Port int
	// PublicPort is the port announced in handshakes, the one peers dial
	// (NAT). 0: the listening port.
	PublicPort int
	// BindV4 and BindV6 are the listen addresses; zero values mean 0.0.0.0
	// and ::. A specific address is also the source address of connections
	// the node dials (libchirp leaves that to the kernel). DisableV4 /
	// DisableV6 turn a family off.
	BindV4, BindV6       netip.Addr
	DisableV4, DisableV6 bool
	// Identity of the node; all zero means random. All 16 bytes are used.
	Identity Identity
	// Asynchronous selects asynchronous mode: a send completes when written
	// to the kernel. The default (false) is synchronous mode: a send
	// completes when the remote released the message.
	Asynchronous bool
	// MaxSlots is how many received messages one connection may hold
	// unreleased: 1..32, 0 for the mode's default (16 asynchronous). A
	// synchronous node always uses 1, as libchirp does.
	MaxSlots int
	// Timeout of a send (write and ACK) and, doubled and capped at 60 s, of
	// a connect: 0.1 s..1200 s, 0 for 5 s.
	Timeout time.Duration
	// ReuseTime after which idle connections and remotes are closed (within
	// ReuseTime + Timeout of their last use):
	// 0.5 s..3600 s, 0 for 30 s. The effective value is at least 3×Timeout.
	ReuseTime time.Duration
	// MaxMessageSize limits header+data of received messages; 0 for 100 MiB.
	MaxMessageSize uint32
	// Backlog of the listen sockets: 1..127, 0 for 100.
	Backlog int
	// BufferSize is libchirp's per-connection read buffer size: 0 or ≥1024.
	// Accepted for compatibility; the loop reads in 64 KiB chunks.
	BufferSize int
	// DisableEncryption turns TLS off for all peers: everything goes out
	// in plaintext. With encryption on (the default), only peers at exactly
	// 127.0.0.1 and ::1 talk plaintext; all others need TLS, so a node
	// without CertChainPEM refuses them, in both directions, with ErrTLS.
	// libchirp instead refuses to start without credentials.
	DisableEncryption bool
	// AlwaysEncrypt encrypts loopback connections too (libchirp's
	// ch_chirp_set_always_encrypt), for tests and benchmarks. It needs
	// CertChainPEM; no effect with DisableEncryption.
	AlwaysEncrypt bool
	// CertChainPEM is the file holding the private key, the node's
	// certificate and the CA certificate (libchirp's combined format, see
	// `chirp certs`); without it (and with encryption on) the node talks
	// to loopback peers only. Every certificate in it is trusted; host
	// names are not checked. DHParamsPEM is accepted for libchirp
	// compatibility and unused: Go speaks TLS 1.3 (and 1.2 with ECDHE),
	// never finite-field DH.
	CertChainPEM, DHParamsPEM string
	// Receive chooses how received messages reach the application:
	// ReceiveWorkers (the default) runs Handler on Workers goroutines,
	// ReceiveInline runs Handler on the event loop itself, ReceiveQueue
	// keeps them for Node.Recv.
	Receive ReceiveMode
	// Handler receives messages (ReceiveWorkers, ReceiveInline). With
	// ReceiveWorkers and no Handler every message is released at once.
	Handler Handler
	// Workers is the number of goroutines running Handler: 0 for 16.
	Workers int
	// ManualRelease turns automatic release off: whoever holds a received
	// message must call Message.Release. Automatic release happens when
	// Handler returns, or, with ReceiveQueue, in Recv (which then hands out
	// a copy).
	ManualRelease bool
	// Logger for connection events (nil: discard).
	Logger *slog.Logger
	// MaxPending bounds the sends the node holds at once, accepted and not
	// finished (queued, being written, or awaiting their ACK), over all
	// remotes: 0 for DefaultMaxPending. At the bound Send and Request wait
	// for room (until their context ends), and SendAsync, SendOnLoop and Go
	// fail at once with ErrQueueFull. It keeps a producer that outruns its
	// remotes from queuing without limit.
	MaxPending int
	// OnSendDone, if set, observes the latency of synchronous sends, which
	// libchirp cannot show: it is called once for every send that was
	// written while waiting for its ACK, when that send finished, with the
	// time from the write to the ACK (err nil) or to the failure (err as
	// the send's done function gets it). Asynchronous sends, and sends that
	// failed before they were written, are not observed. It runs on the
	// event loop, so it must be quick and must not block (a histogram's
	// Observe, an atomic add); the node allocates nothing for it.
	OnSendDone func(latency time.Duration, err error)
	// BusyPoll is how long the node's event loop goes on polling its
	// sockets once it has nothing to do, before it sleeps in epoll_wait:
	// 0 (the default) sleeps at once; at most 10ms. On one host or a fast
	// network most of a round trip is the wake-up of the sleeping loop
	// thread, which a message arriving within BusyPoll does not need:
	// chirp bench on loopback with 20µs at both ends measured sync single
	// and async single passes at 1.6 to 2.5 times the rate without. The
	// price is CPU, up to BusyPoll of a core each time the loop runs out
	// of work, and where the peer shares the same cores, pipelined traffic
	// can lose as much as it gains (tls async pooled16 1KiB: -15 %). A Go
	// extension; it needs the gnet patch this module carries
	// (third_party/gnet/CHIRP.md): built against an unpatched gnet, Start
	// refuses a BusyPoll above 0 with an error that says so.
	BusyPoll time.Duration
}

// settings are a Config with defaults applied and derived values.
type settings struct {
	Config
	port           int
	slots          int
	timeout        time.Duration
	connectTimeout time.Duration
	reuse          time.Duration
	maxMsg         uint64
	backlog        int
	workers        int
	maxPending     int64
}

func valueErr(field string, v any, rule string) error {
	return fmt.Errorf("%w: Config.%s = %v: %s", ErrValue, field, v, rule)
}

func (c Config) settings() (settings, error) {
	s := settings{Config: c}
	switch {
	case c.Port == 0:
		s.port = DefaultPort
	case c.Port == AnyPort:
		s.port = 0
	case c.Port <= 1024 || c.Port > 65535:
		return s, valueErr("Port", c.Port, "must be 1025..65535, 0 (default 2998) or AnyPort")
	default:
		s.port = c.Port
	}
	if c.PublicPort < 0 || c.PublicPort > 65535 {
		return s, valueErr("PublicPort", c.PublicPort, "must be 0..65535")
	}
	if c.DisableV4 && c.DisableV6 {
		return s, valueErr("DisableV4", true, "cannot disable both IPv4 and IPv6")
	}
	if c.BindV4.IsValid() && !c.BindV4.Is4() {
		return s, valueErr("BindV4", c.BindV4, "must be an IPv4 address")
	}
	if c.BindV6.IsValid() && (!c.BindV6.Is6() || c.BindV6.Is4In6()) {
		return s, valueErr("BindV6", c.BindV6, "must be an IPv6 address")
	}
	switch {
	case c.MaxSlots < 0 || c.MaxSlots > slots.MaxSlots:
		return s, valueErr("MaxSlots", c.MaxSlots, "must be 0..32")
	case !c.Asynchronous:
		s.slots = 1
	case c.MaxSlots == 0:
		s.slots = DefaultAsyncSlots
	default:
		s.slots = c.MaxSlots
	}
	s.timeout = c.Timeout
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.timeout < 100*time.Millisecond || s.timeout > 1200*time.Second {
		return s, valueErr("Timeout", c.Timeout, "must be 100ms..1200s")
	}
	s.connectTimeout = min(2*s.timeout, 60*time.Second)
	s.reuse = c.ReuseTime
	if s.reuse == 0 {
		s.reuse = DefaultReuseTime
	}
	s.reuse = max(s.reuse, 3*s.timeout)
	if s.reuse < 500*time.Millisecond || s.reuse > 3600*time.Second {
		return s, valueErr("ReuseTime", c.ReuseTime, "must be 0.5s..3600s (after raising it to 3×Timeout)")
	}
	s.maxMsg = uint64(c.MaxMessageSize)
	if s.maxMsg == 0 {
		s.maxMsg = DefaultMaxMessageSize
	}
	s.backlog = c.Backlog
	if s.backlog == 0 {
		s.backlog = DefaultBacklog
	}
	if s.backlog < 1 || s.backlog > 127 {
		return s, valueErr("Backlog", c.Backlog, "must be 1..127 or 0 (default 100)")
	}
	if c.BufferSize != 0 && c.BufferSize < 1024 {
		return s, valueErr("BufferSize", c.BufferSize, "must be 0 or at least 1024")
	}
	if c.AlwaysEncrypt && !c.DisableEncryption && c.CertChainPEM == "" {
		// Every peer would be refused: a node that talks to nobody.
		return s, valueErr("AlwaysEncrypt", true, "needs CertChainPEM")
	}
	s.workers = c.Workers
	if s.workers == 0 {
		s.workers = 16
	}
	if s.workers < 0 {
		return s, valueErr("Workers", c.Workers, "must not be negative")
	}
	s.maxPending = int64(c.MaxPending)
	if s.maxPending == 0 {
		s.maxPending = DefaultMaxPending
	}
	if s.maxPending < 0 {
		return s, valueErr("MaxPending", c.MaxPending, "must not be negative")
	}
	if c.BusyPoll < 0 || c.BusyPoll > 10*time.Millisecond {
		return s, valueErr("BusyPoll", c.BusyPoll, "must be 0..10ms")
	}
	switch c.Receive {
	case ReceiveWorkers, ReceiveQueue:
	case ReceiveInline:
		if c.Handler == nil {
			return s, valueErr("Handler", nil, "ReceiveInline needs a Handler")
		}
	default:
		return s, valueErr("Receive", c.Receive, "unknown receive mode")
	}
	return s, nil
}
