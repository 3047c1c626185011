package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/perf"
)

// The node's errors carry every layer's part (node, reactor, net) for a
// program to test with errors.Is. A person at the command line needs what
// failed, where, and why, each once: these functions say that, from the
// sentinels, the flags and the remote as the user named it. New node error
// texts need no change here.

// startError explains why a node with the flags f did not start.
func (f *nodeFlags) startError(err error) error {
	var (
		errno syscall.Errno
		pe    *fs.PathError
	)
	switch {
	case errors.Is(err, node.ErrAddrInUse):
		return fmt.Errorf("%s is already in use", f.where())
	case errors.Is(err, node.ErrTLS) && errors.As(err, &pe):
		return fmt.Errorf("-tls-chain %s: %v", f.tlsChain, pe.Err)
	case errors.Is(err, node.ErrTLS):
		return fmt.Errorf("-tls-chain %s: unusable TLS credentials: %s", f.tlsChain, afterLast(err.Error(), f.tlsChain+": "))
	case errors.As(err, &errno) && errno == syscall.EADDRNOTAVAIL:
		return fmt.Errorf("cannot listen on %s: -bind %s is not an address of this machine", f.where(), f.bind)
	case errors.As(err, &errno):
		return fmt.Errorf("cannot listen on %s: %v", f.where(), errno)
	}
	return errors.New(cause(err))
}

// sendError explains why a send or request to dst (as the user named it)
// failed; timeout is the -timeout in force.
func sendError(err error, dst string, timeout time.Duration) error {
	switch {
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, node.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from %s within %v", dst, timeout)
	case errors.Is(err, node.ErrCannotConnect):
		return fmt.Errorf("cannot connect to %s: %s", dst, cause(err))
	case errors.Is(err, node.ErrTLS):
		return fmt.Errorf("TLS with %s failed: %s", dst, cause(err))
	case errors.Is(err, node.ErrTooLarge):
		return fmt.Errorf("connection to %s closed: a message was over the size limit", dst)
	case errors.Is(err, node.ErrConnLost):
		return fmt.Errorf("connection to %s lost: %s", dst, cause(err))
	case errors.Is(err, node.ErrQueueFull):
		return fmt.Errorf("too many sends to %s pending", dst)
	case errors.Is(err, node.ErrProtocol):
		return fmt.Errorf("connection to %s failed: %s", dst, cause(err))
	case errors.Is(err, node.ErrShutdown):
		return errors.New("interrupted: the node closed before the send finished")
	case errors.Is(err, perf.ErrStalled):
		return fmt.Errorf("%s stopped answering (-timeout %v)", dst, timeout)
	case errors.Is(err, perf.ErrBadEcho):
		return fmt.Errorf("%s echoed other bytes than were sent", dst)
	}
	return fmt.Errorf("%s: %s", dst, cause(err))
}

// cause is the innermost reason of err: the system's error number if it
// is wrapped (connection refused), else the last part of the text, which
// every layer prefixes with its own ("...: dial tcp ...: connect: connection
// refused"). Text, not the wrapped chain, because a layer may format the
// error below it with %v.
func cause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	s := err.Error()
	if i := strings.Index(s, " ("); i >= 0 && strings.HasSuffix(s, ")") {
		s = s[:i] // x509's "(possibly because of ...: ...)" explains, with colons of its own
	}
	if s = afterLast(s, ": "); s == "EOF" {
		return "the peer closed the connection"
	}
	return s
}

// afterLast is what follows the last sep in s, or s.
func afterLast(s, sep string) string {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[i+len(sep):]
	}
	return s
}

// resolve turns the user's "host:port" into an address a message can
// carry, with the node's resolver (IP literals as they are, names looked up
// within node.DefaultResolveTimeout), and says what is wrong in the user's
// terms.
func resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	ap, err := node.ResolveAddr(ctx, hostport)
	if err == nil {
		return ap, nil
	}
	host, port, serr := net.SplitHostPort(hostport)
	var dnsErr *net.DNSError
	switch {
	case serr != nil || host == "" || port == "":
		return ap, usageError{fmt.Sprintf("%q: want HOST:PORT", hostport)}
	case errors.Is(err, node.ErrValue):
		return ap, usageError{fmt.Sprintf("%q: %q is not a port", hostport, port)}
	case errors.As(err, &dnsErr):
		return ap, fmt.Errorf("cannot resolve %s: %s", host, dnsErr.Err)
	}
	return ap, fmt.Errorf("cannot resolve %s: %s", host, cause(err))
}
