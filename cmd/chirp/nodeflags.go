package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/perf"
)

// nodeFlags are the flags of the commands that run a node (echo, listen,
// send, request): one declaration, and a text that fits each command.
type nodeFlags struct {
	port          int
	bind          string
	async         bool
	slots         int
	timeout       time.Duration
	workers       int
	tlsChain      string
	alwaysEncrypt bool
	busyPoll      time.Duration
	verbose       bool
}

// nodeUse is how a command uses its node, which decides the flags it has
// and what they say.
type nodeUse struct {
	// server: the node waits for peers at a port they know (echo, listen);
	// otherwise it is a client whose port only carries answers back.
	server bool
	// timeout is the -timeout text.
	timeout string
	// workers is the -workers text; "" for no -workers flag.
	workers        string
	defaultWorkers int
}

// Limits the CLI checks itself, so that errors name the flag, not a field
// of node.Config.
const (
	minPort, maxPort       = 1025, 65535
	minTimeout, maxTimeout = 100 * time.Millisecond, 1200 * time.Second
	maxSlots               = 32
	maxBusyPoll            = 10 * time.Millisecond
)

// register declares the flags of use on fs.
func (f *nodeFlags) register(fs *flag.FlagSet, use nodeUse) {
	if use.server {
		fs.IntVar(&f.port, "port", node.DefaultPort, "port to listen on, 1025..65535; 0 picks a free one")
		fs.StringVar(&f.bind, "bind", "", "comma-separated addresses to listen on, at most one IPv4 and one IPv6\n(e.g. 127.0.0.1,::1); empty: all")
		fs.IntVar(&f.slots, "slots", 0, "received messages one connection may hold unreleased, 1..32 (asynchronous mode;\n0: 16); a synchronous node always holds 1")
	} else {
		fs.IntVar(&f.port, "port", 0, "port this node listens on, where answers come back, 1025..65535; 0 picks a free one")
		fs.StringVar(&f.bind, "bind", "", "comma-separated local addresses to listen on and send from, at most one IPv4 and\none IPv6 (e.g. 127.0.0.1); empty: all")
	}
	fs.BoolVar(&f.async, "async", false, "asynchronous mode: a send completes when written, not when the remote released it")
	fs.DurationVar(&f.timeout, "timeout", node.DefaultTimeout, use.timeout+" (CHIRP_TIMEOUT)")
	if use.workers != "" {
		fs.IntVar(&f.workers, "workers", use.defaultWorkers, use.workers)
	}
	fs.StringVar(&f.tlsChain, "tls-chain", "", "PEM `FILE` with the node's key, certificate and CA (libchirp's CERT_CHAIN_PEM; chirp certs\nmakes them): TLS with every peer but 127.0.0.1 and ::1 (CHIRP_TLS_CHAIN). Without it\nencryption is off: all connections are plaintext")
	fs.BoolVar(&f.alwaysEncrypt, "always-encrypt", false, "encrypt loopback connections too (libchirp's always-encrypt; needs -tls-chain, and the peer\nmust do the same): for measurements on one machine")
	fs.DurationVar(&f.busyPoll, "busy-poll", 0, "keep polling this long (at most 10ms, e.g. 20us) before the event loop sleeps: a lower\nlatency when the next message comes within it, for up to that much CPU each time the node\nruns out of work (0: sleep at once)")
	fs.BoolVar(&f.verbose, "v", false, "log connection events to stderr")
}

// config turns the flags into a node configuration; logs go to errOut.
func (f *nodeFlags) config(errOut io.Writer) (node.Config, error) {
	cfg := node.Config{
		Port:         f.port,
		Asynchronous: f.async,
		MaxSlots:     f.slots,
		Timeout:      f.timeout,
		Workers:      f.workers,
		BusyPoll:     f.busyPoll,
	}
	switch {
	case f.port == 0:
		cfg.Port = node.AnyPort
	case f.port < minPort || f.port > maxPort:
		return cfg, usageError{fmt.Sprintf("-port %d: want %d..%d, or 0 for a free one", f.port, minPort, maxPort)}
	}
	switch {
	case f.timeout < minTimeout || f.timeout > maxTimeout:
		return cfg, usageError{fmt.Sprintf("-timeout %v: want %v to %v", f.timeout, minTimeout, maxTimeout)}
	case f.slots < 0 || f.slots > maxSlots:
		return cfg, usageError{fmt.Sprintf("-slots %d: want 1..%d, or 0 for 16", f.slots, maxSlots)}
	case f.workers < 0:
		return cfg, usageError{fmt.Sprintf("-workers %d: must not be negative", f.workers)}
	case f.busyPoll < 0 || f.busyPoll > maxBusyPoll:
		return cfg, usageError{fmt.Sprintf("-busy-poll %v: want 0 to %v", f.busyPoll, maxBusyPoll)}
	}
	switch {
	case f.tlsChain != "":
		cfg.CertChainPEM = f.tlsChain
		cfg.AlwaysEncrypt = f.alwaysEncrypt
	case f.alwaysEncrypt:
		return cfg, usageError{"-always-encrypt needs -tls-chain"}
	default:
		cfg.DisableEncryption = true
	}
	if f.bind != "" {
		cfg.DisableV4, cfg.DisableV6 = true, true
		for _, s := range strings.Split(f.bind, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			switch {
			case err != nil:
				return cfg, usageError{fmt.Sprintf("-bind: %q is not an IP address", strings.TrimSpace(s))}
			case a.Is4() && !cfg.DisableV4, a.Is6() && !cfg.DisableV6:
				return cfg, usageError{fmt.Sprintf("-bind: more than one address of the family of %s", a)}
			case a.Is4():
				cfg.BindV4, cfg.DisableV4 = a, false
			default:
				cfg.BindV6, cfg.DisableV6 = a, false
			}
		}
	}
	if f.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

// where names the node's listening address as the flags gave it: "port
// 2998", or "127.0.0.1 port 2998".
func (f *nodeFlags) where() string {
	if f.bind == "" {
		return fmt.Sprintf("port %d", f.port)
	}
	return fmt.Sprintf("%s port %d", strings.ReplaceAll(f.bind, ",", " and "), f.port)
}

// start starts a node with cfg and says why it could not, in flag terms.
func (f *nodeFlags) start(cfg node.Config) (*node.Node, error) {
	n, err := node.Start(cfg)
	if err != nil {
		return nil, f.startError(err)
	}
	return n, nil
}

// style is how echo and send handle received messages: on the event loop,
// unless -workers asks for a pool.
func (f *nodeFlags) style() perf.Style {
	if f.workers > 0 {
		return perf.StyleWorkers
	}
	return perf.StyleInline
}

// security describes the node's encryption for its banner.
func security(cfg node.Config) string {
	switch {
	case cfg.DisableEncryption:
		return "plaintext"
	case cfg.AlwaysEncrypt:
		return "TLS with every peer, loopback too"
	}
	return "TLS except with 127.0.0.1 and ::1"
}

func modeName(async bool) string {
	if async {
		return "asynchronous"
	}
	return "synchronous"
}

// untilSignal is a context that ends on SIGINT or SIGTERM.
func untilSignal() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// closeNode closes n, giving sends in flight a moment.
func closeNode(n *node.Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return n.Close(ctx)
}

// readData is a message's data from the command line: DATA itself, or
// standard input when DATA is "-".
func readData(s stdio, arg string) ([]byte, error) {
	if arg != "-" {
		return []byte(arg), nil
	}
	b, err := io.ReadAll(s.in)
	if err != nil {
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	return b, nil
}
