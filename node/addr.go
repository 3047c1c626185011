package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// DefaultResolveTimeout bounds a host name lookup whose context has no
// deadline (NewMessage, ResolveAddr).
const DefaultResolveTimeout = 5 * time.Second

// resolver looks host names up; tests replace it with one that asks a DNS
// server of their own.
var resolver = net.DefaultResolver

// ResolveAddr turns "host:port" into the address a Message carries. IP
// literals ("127.0.0.1:2998", "[::1]:2998") are taken as they are, without
// a lookup. A host name is looked up within ctx, or DefaultResolveTimeout
// if ctx has no deadline, and gives its first IPv4 address, or its first
// IPv6 address if it has none (a message goes to one address: use a
// literal to choose). The port may be a number or a service name. A
// malformed address is ErrValue; a name that does not resolve, in time or
// at all, is ErrResolve (wrapping ctx's error if ctx ended).
func ResolveAddr(ctx context.Context, hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrValue, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultResolveTimeout)
		defer cancel()
	}
	pn, err := resolver.LookupPort(ctx, "tcp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q: %w", ErrValue, hostport, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := resolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrResolve, lerr)
		}
		ip, err = firstAddr(ips)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %s: %w", ErrResolve, host, err)
		}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(pn)), nil
}

// firstAddr picks the first IPv4 address of a lookup, else the first one.
func firstAddr(ips []netip.Addr) (netip.Addr, error) {
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			return ip, nil
		}
	}
	if len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("no address")
	}
	return ips[0], nil
}
