package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gochirp/chirp/node"
)

// errNoTLS is the answer to -tls-chain until the node speaks TLS.
var errNoTLS = errors.New("TLS not supported yet (run without -tls-chain; connections are plaintext)")

// nodeFlags are the flags of the commands that run a node (echo, listen,
// send): one declaration, one meaning everywhere.
type nodeFlags struct {
	port     int
	bind     string
	async    bool
	slots    int
	timeout  time.Duration
	workers  int
	tlsChain string
	verbose  bool
}

// register declares the flags on fs; port is the default -port.
func (f *nodeFlags) register(fs *flag.FlagSet, port int) {
	fs.IntVar(&f.port, "port", port, "port to listen on; 0 picks a free one")
	fs.StringVar(&f.bind, "bind", "", "comma-separated addresses to listen on, at most one IPv4 and one IPv6 (e.g. 127.0.0.1,::1); empty: all")
	fs.BoolVar(&f.async, "async", false, "asynchronous mode: a send completes when written, not when the remote released it")
	fs.IntVar(&f.slots, "slots", 0, "message slots per connection, 1..32 (asynchronous mode; 0: 16)")
	fs.DurationVar(&f.timeout, "timeout", node.DefaultTimeout, "send timeout (write and, synchronous, the ACK)")
	fs.IntVar(&f.workers, "workers", 0, "goroutines running the message handler (0: 16)")
	fs.StringVar(&f.tlsChain, "tls-chain", "", "PEM `FILE` with key, certificate and CA for TLS (not supported yet)")
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
	if f.tlsChain != "" {
		return cfg, errNoTLS
	}
	cfg.DisableEncryption = true
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
// literals as they are, names through the resolver (first address).
func resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, usageError{fmt.Sprintf("address %q: %v", hostport, err)}
	}
	pn, err := net.DefaultResolver.LookupPort(ctx, "tcp", port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ips[0].Unmap(), uint16(pn)), nil
}
