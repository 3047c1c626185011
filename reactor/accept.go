package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Accept back-off, as net/http's Server.Serve: an accept error (EMFILE,
// ENFILE, ENOBUFS, ...) waits 5 ms, doubling up to 1 s, before the next try.
const (
	acceptDelayMin = 5 * time.Millisecond
	acceptDelayMax = time.Second
	// acceptWarnEvery rate-limits the Warn log of accept errors.
	acceptWarnEvery = 5 * time.Second
)

// listen opens the reactor's listeners: one per family, sharing one port.
// With port 0 and two families, a free port of the first family may be
// taken in the other one; then it tries again with a new port.
func listen(cfg Config, v4, v6 netip.Addr) ([]*net.TCPListener, error) {
	tries := 1
	if cfg.Port == 0 && v4.IsValid() && v6.IsValid() {
		tries = 8
	}
	var err error
	for range tries {
		var lns []*net.TCPListener
		if lns, err = listenOnce(cfg, v4, v6); err == nil {
			return lns, nil
		}
		if !errors.Is(err, ErrAddrInUse) || cfg.Port != 0 {
			break
		}
	}
	return nil, err
}

func listenOnce(cfg Config, v4, v6 netip.Addr) ([]*net.TCPListener, error) {
	port := cfg.Port
	var lns []*net.TCPListener
	for _, a := range []netip.Addr{v4, v6} {
		if !a.IsValid() {
			continue
		}
		ln, err := listenOne(cfg, netip.AddrPortFrom(a, uint16(port)))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		port = int(netip.MustParseAddrPort(ln.Addr().String()).Port())
		lns = append(lns, ln)
	}
	return lns, nil
}

// listenOne listens on ap with SO_REUSEADDR (Go's default on Unix), the
// configured backlog and keepalive. Keepalive is set on the listening
// socket: Linux passes it on to accepted sockets, so accepting costs no
// extra system calls for it.
func listenOne(cfg Config, ap netip.AddrPort) (*net.TCPListener, error) {
	network := "tcp4"
	if ap.Addr().Is6() {
		network = "tcp6" // IPV6_V6ONLY: the IPv4 listener may share the port
	}
	// KeepAlive -1: Go would otherwise set its own 15 s keepalive on each
	// accepted connection, overriding the listener's.
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), network, ap.String())
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w: listening on %s: %w", ErrAddrInUse, ap, err)
		}
		return nil, fmt.Errorf("reactor: listening on %s: %w", ap, err)
	}
	ln := l.(*net.TCPListener)
	rc, err := ln.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			// listen(2) again on a listening socket only updates its backlog.
			err = unix.Listen(int(fd), cfg.Backlog)
			if err == nil && cfg.KeepAlive > 0 {
				err = setKeepAlive(int(fd), cfg.KeepAlive)
			}
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("reactor: listener %s: %w", ap, err)
	}
	return ln, nil
}

// acceptLoop accepts connections on ln and enrolls them into the loop,
// until ln is closed. gnet's own acceptor ends the whole engine on the
// first accept error other than EAGAIN, EINTR, ECONNRESET or ECONNABORTED,
// EMFILE included; this one survives every error, as net/http does: it
// logs (rate-limited), backs off and tries again, while the loop keeps
// serving the connections it has. Accepting is rare next to reading and
// writing, so one goroutine per listener costs nothing that matters.
func (r *Reactor) acceptLoop(ln *net.TCPListener) {
	defer r.acceptWG.Done()
	var delay time.Duration
	var lastWarn time.Time
	failures := 0
	// backOff logs err (rate-limited) and waits; false: the reactor closes.
	backOff := func(err error) bool {
		failures++
		delay = min(max(2*delay, acceptDelayMin), acceptDelayMax)
		if now := time.Now(); now.Sub(lastWarn) >= acceptWarnEvery {
			lastWarn = now
			r.log.Warn("reactor: accept failed, retrying", "listener", ln.Addr().String(),
				"err", err, "failures", failures, "retry_in", delay)
			failures = 0
		}
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-r.ctx.Done():
			return false
		}
	}
	for {
		nc, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !backOff(err) {
				return
			}
			continue
		}
		c := &Conn{r: r, state: stateAccepting}
		ch, err := r.el.Enroll(gnet.NewContext(context.Background(), c), nc)
		if err != nil {
			nc.Close()
			continue // the engine is ending; the listener is closed next
		}
		// Waiting keeps a storm of accepts from outrunning the loop.
		select {
		case res := <-ch:
			// gnet dups the socket to enroll it; at the descriptor limit
			// that fails instead of accept(2) (and gnet closes the socket).
			if res.Err != nil {
				if !backOff(res.Err) {
					return
				}
				continue
			}
		case <-r.stopped:
			return
		}
		delay = 0
	}
}

// stopAccepting closes the listeners and waits for the accept loops.
func (r *Reactor) stopAccepting() {
	for _, ln := range r.lns {
		ln.Close()
	}
	r.acceptWG.Wait()
}
