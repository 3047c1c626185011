package main

import (
	"context"
	"errors"
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
// send): one declaration, one meaning everywhere.
type nodeFlags struct {
	port          int
	bind          string
	async         bool
	slots         int
	timeout       time.Duration
	workers       int
	tlsChain      string
	alwaysEncrypt bool
	verbose       bool
}

// register declares the flags on fs; port is the default -port.
func (f *nodeFlags) register(fs *flag.FlagSet, port int) {
	fs.IntVar(&f.port, "port", port, "port to listen on; 0 picks a free one")
	fs.StringVar(&f.bind, "bind", "", "comma-separated addresses to listen on, at most one IPv4 and one IPv6 (e.g. 127.0.0.1,::1); empty: all")
	fs.BoolVar(&f.async, "async", false, "asynchronous mode: a send completes when written, not when the remote released it")
	fs.IntVar(&f.slots, "slots", 0, "message slots per connection, 1..32 (asynchronous mode; 0: 16)")
	fs.DurationVar(&f.timeout, "timeout", node.DefaultTimeout, "send timeout (write and, synchronous, the ACK)")
	fs.IntVar(&f.workers, "workers", 0, "goroutines running the message handler; 0: echo and send handle messages on the event loop\n(fastest, as libchirp), listen uses 1")
	fs.StringVar(&f.tlsChain, "tls-chain", "", "PEM `FILE` with the node's key, certificate and CA (libchirp's CERT_CHAIN_PEM; chirp certs\nmakes them): TLS with every peer but 127.0.0.1 and ::1. Without it encryption is off:\nall connections are plaintext")
	fs.BoolVar(&f.alwaysEncrypt, "always-encrypt", false, "encrypt loopback connections too (libchirp's always-encrypt; needs -tls-chain, and the peer\nmust do the same): for measurements on one machine")
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
	}
	if f.port == 0 {
		cfg.Port = node.AnyPort
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
				return cfg, usageError{fmt.Sprintf("-bind: %v", err)}
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

// resolve turns "host:port" into an address a message can carry: IP
// literals as they are, names through the resolver (see node.ResolveAddr).
func resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	ap, err := node.ResolveAddr(ctx, hostport)
	if errors.Is(err, node.ErrValue) {
		return ap, usageError{err.Error()}
	}
	return ap, err
}
