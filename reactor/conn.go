package reactor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

type connState uint8

const (
	// stateDialing: Dial is in flight; no socket yet.
	stateDialing connState = iota
	// stateAccepting: accepted, being enrolled into the loop.
	stateAccepting
	// stateOpen: attached to gnet, bytes are read and delivered.
	stateOpen
	// statePaused: detached from gnet; the kernel holds what the peer sends.
	statePaused
	// stateResuming: ResumeRead was called; leftover bytes are delivered,
	// then the socket is enrolled into the loop again.
	stateResuming
	// stateClosed: both descriptors are closed; OnClose was or will be called.
	stateClosed
)

// maxKeptOut is the capacity above which a drained output buffer is dropped
// instead of kept for reuse.
const maxKeptOut = 1 << 20

// Conn is one TCP connection of a Reactor. Its methods must be called on the
// loop (inside Handler callbacks, timers or submitted closures).
type Conn struct {
	r        *Reactor
	gc       gnet.Conn // gnet's view; nil while detached
	fd       int       // the socket, used for writes: gnet's, or ownFd
	ownFd    bool      // fd is the reactor's own duplicate (detached, resuming)
	state    connState
	outbound bool
	ctx      any
	local    netip.AddrPort
	remote   netip.AddrPort

	in     []byte // bytes the handler has not consumed yet
	out    []byte // bytes the kernel has not taken yet, from outOff
	outOff int
	werr   error
	armed  bool // registered in the write poller

	detaching bool // gnet's close of gc is a pause, not the end
	detachReq bool // detach when the running gnet callback returns
	closeReq  bool // close gc when the running gnet callback returns
	enrolling bool // re-enrollment in flight
	wantPause bool // PauseRead during re-enrollment

	dialDone func(*Conn, error)
}

// Context returns the value set by SetContext (or given to Dial).
func (c *Conn) Context() any { return c.ctx }

// SetContext stores the user's state for this connection.
func (c *Conn) SetContext(v any) { c.ctx = v }

// LocalAddr is the local address of the socket.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// Outbound reports whether the connection was dialed (not accepted).
func (c *Conn) Outbound() bool { return c.outbound }

// Closed reports whether the connection is closed.
func (c *Conn) Closed() bool { return c.state == stateClosed }

// Paused reports whether reading is paused.
func (c *Conn) Paused() bool { return c.state == statePaused || c.wantPause }

// Buffered is the number of written bytes the kernel has not taken yet.
func (c *Conn) Buffered() int { return len(c.out) - c.outOff }

// Reactor returns the reactor the connection belongs to.
func (c *Conn) Reactor() *Reactor { return c.r }

func (c *Conn) attachNew(gc gnet.Conn) {
	c.gc = gc
	c.fd = gc.Fd()
	c.state = stateOpen
	c.local = toAddrPort(gc.LocalAddr())
	if !c.outbound || !c.remote.IsValid() {
		c.remote = toAddrPort(gc.RemoteAddr())
	}
	gc.SetContext(c)
	_ = gc.SetNoDelay(true)
	c.r.conns[c.fd] = c
	c.r.nOpen.Add(1)
}

// setFd makes fd the connection's socket descriptor (own: the reactor's
// duplicate, else gnet's), moving the write poller's registration and
// closing the previous descriptor if it was the reactor's. It runs while
// the previous descriptor is still open.
func (c *Conn) setFd(fd int, own bool) {
	old := c.fd
	if c.armed {
		c.r.wp.remove(old)
		if err := c.r.wp.add(fd); err != nil {
			c.armed = false
			defer func() { _ = c.failWrite(err) }()
		}
	}
	delete(c.r.conns, old)
	c.r.conns[fd] = c
	if c.ownFd {
		_ = unix.Close(old)
	}
	c.fd, c.ownFd = fd, own
}

// detached runs in gnet's OnClose for a read-pause detach, before gnet
// closes its descriptor: the reactor keeps the socket open with its own
// duplicate. It reports false if that failed and the connection closed.
func (c *Conn) detached(gnetFd int) bool {
	if c.ownFd {
		return true // resumed and paused again before gnet's OnOpen: still ours
	}
	fd, err := unix.FcntlInt(uintptr(gnetFd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		c.closeNow(fmt.Errorf("reactor: pausing: dup: %w", err), true, false)
		return false
	}
	c.setFd(fd, true)
	return true
}

func toAddrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// pendingAction is what the running gnet callback of c returns.
func (c *Conn) pendingAction() gnet.Action {
	if c.closeReq || c.detachReq {
		c.closeReq, c.detachReq = false, false
		return gnet.Close
	}
	return gnet.None
}

func (c *Conn) readable() bool {
	return (c.state == stateOpen || c.state == stateResuming) && !c.wantPause
}

// deliver offers buf, after any leftover bytes, to the handler. It offers
// the rest again while the handler makes progress and reading is on (the
// handler may pause and resume within one call, e.g. when it frees a slot).
func (c *Conn) deliver(buf []byte) {
	data := buf
	if len(c.in) > 0 {
		c.in = append(c.in, buf...)
		data = c.in
	}
	for len(data) > 0 {
		consumed := 0
		if c.readable() {
			consumed = c.r.handler.OnData(c, data)
			if consumed < 0 || consumed > len(data) {
				consumed = len(data)
			}
		}
		if c.state == stateClosed {
			c.in = nil
			return
		}
		rest := data[consumed:]
		if len(c.in) > 0 {
			n := copy(c.in, rest)
			c.in = c.in[:n]
		} else if len(rest) > 0 {
			c.in = append(c.in[:0], rest...)
		}
		if consumed == 0 || !c.readable() {
			break
		}
		data = c.in
	}
	if c.state == statePaused && c.gc != nil && !c.detaching && len(c.in) >= softPauseLimit {
		c.detachGnet() // the peer keeps sending: stop reading for real
	}
}

// softPauseLimit is how many unconsumed bytes a paused connection keeps
// before it is detached from gnet. A pause starts soft: the socket stays in
// the loop, and a pause that ends before the peer sends this much more
// costs nothing. It bounds what a paused connection holds to about
// softPauseLimit plus one read (readBufferCap).
const softPauseLimit = 64 << 10

// PauseRead stops delivering the connection's bytes until ResumeRead, and
// stops reading the socket once the peer sent about 64 KiB more. Bytes
// already read are kept and delivered first after resuming.
func (c *Conn) PauseRead() {
	switch c.state {
	case stateOpen:
		c.state = statePaused // soft: see softPauseLimit
	case stateResuming:
		if c.enrolling {
			c.wantPause = true
		} else {
			c.state = statePaused
		}
	}
}

func (c *Conn) detachGnet() {
	c.detaching = true
	c.r.detaches++
	if c.r.cur == c {
		c.detachReq = true
		return
	}
	_ = c.r.el.Close(c.gc) // calls OnClose, which sees detaching
}

// ResumeRead undoes PauseRead. Leftover bytes are delivered from a closure
// on the loop, not from inside this call.
func (c *Conn) ResumeRead() {
	switch {
	case c.state == stateResuming && c.wantPause:
		c.wantPause = false
	case c.state == statePaused && c.gc != nil:
		// Paused softly (or detach requested, not done): never detached.
		c.state = stateOpen
		c.detaching, c.detachReq = false, false
		if len(c.in) > 0 {
			_ = c.r.Submit(func() {
				if c.state == stateOpen && c.gc != nil {
					c.r.deliverInGnet(c, nil)
					if c.detachReq && c.gc != nil { // paused again from outside gnet
						c.detachReq = false
						_ = c.r.el.Close(c.gc)
					}
				}
			})
		}
	case c.state == statePaused:
		c.state = stateResuming
		if err := c.r.Submit(c.resume); err != nil {
			c.closeNow(err, false, false)
		}
	}
}

// resume delivers leftover bytes, then enrolls the socket into the loop.
func (c *Conn) resume() {
	if c.state != stateResuming || c.enrolling {
		return
	}
	if len(c.in) > 0 {
		c.deliver(nil)
		if c.state != stateResuming {
			return
		}
	}
	nc, err := fileConn(c.fd)
	if err != nil {
		c.closeNow(fmt.Errorf("reactor: resume: %w", err), false, false)
		return
	}
	ch, err := c.r.el.Enroll(gnet.NewContext(context.Background(), c), nc)
	if err != nil {
		nc.Close()
		c.closeNow(fmt.Errorf("%w: resume: %w", ErrClosed, err), false, false)
		return
	}
	c.enrolling = true
	c.r.dialWG.Add(1)
	go func() {
		defer c.r.dialWG.Done()
		if res := <-ch; res.Err != nil {
			_ = c.r.Submit(func() {
				c.closeNow(fmt.Errorf("reactor: resume: %w", res.Err), false, false)
			})
		}
	}()
}

func fileConn(fd int) (net.Conn, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(nfd), "chirp-conn")
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}

// Write writes b; see Writev.
func (c *Conn) Write(b []byte) error {
	bs := [1][]byte{b}
	return c.Writev(bs[:])
}

// Writev writes the slices in order with as few system calls as possible.
// What the kernel does not take at once is copied and written when the
// socket becomes writable (then Drainer.OnDrain reports the end), so the
// caller may reuse the slices when Writev returns. A write error closes
// the connection (OnClose follows from the loop) and is returned.
func (c *Conn) Writev(bs [][]byte) error {
	switch {
	case c.state == stateClosed || c.state == stateDialing || c.state == stateAccepting:
		return ErrConnClosed
	case c.werr != nil:
		return c.werr
	}
	if c.Buffered() > 0 {
		for _, b := range bs {
			c.out = append(c.out, b...)
		}
		return nil
	}
	total := 0
	for _, b := range bs {
		total += len(b)
	}
	if total == 0 {
		return nil
	}
	n, err := c.r.writev(c.fd, bs)
	if err != nil {
		return c.failWrite(err)
	}
	if n < total {
		for _, b := range bs {
			if n >= len(b) {
				n -= len(b)
				continue
			}
			c.out = append(c.out, b[n:]...)
			n = 0
		}
		c.arm()
	}
	return nil
}

// writev writes as much of bs as the kernel takes now, at most 1024 slices
// per system call. EAGAIN is not an error: it returns the count so far.
func (r *Reactor) writev(fd int, bs [][]byte) (int, error) {
	written := 0
	for len(bs) > 0 {
		r.iov = r.iov[:0]
		want, used := 0, 0
		for _, b := range bs {
			if len(r.iov) == 1024 {
				break
			}
			used++
			if len(b) == 0 {
				continue
			}
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			r.iov = append(r.iov, v)
			want += len(b)
		}
		if want == 0 {
			bs = bs[used:]
			continue
		}
		n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&r.iov[0])), uintptr(len(r.iov)))
		clear(r.iov) // do not keep the caller's buffers alive
		switch errno {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return written, nil
		default:
			return written, errno
		}
		written += int(n)
		if int(n) < want {
			return written, nil
		}
		bs = bs[used:]
	}
	return written, nil
}

func (c *Conn) failWrite(err error) error {
	switch {
	case errors.Is(err, syscall.EPIPE): // the peer closed; EPIPE adds nothing
		c.werr = &reasonError{kind: ErrPeerClosed, text: ErrPeerClosed.Error(), err: err}
	case errors.Is(err, syscall.ECONNRESET):
		c.werr = &reasonError{kind: ErrPeerClosed, text: cause(err), err: err}
	default:
		c.werr = fmt.Errorf("reactor: write: %w", err)
	}
	werr := c.werr
	if e := c.r.Submit(func() { c.closeNow(werr, false, false) }); e != nil {
		c.closeNow(werr, false, false)
	}
	return werr
}

func (c *Conn) arm() {
	if c.armed {
		if err := c.r.wp.rearm(c.fd); err == nil {
			return
		}
	}
	if err := c.r.wp.add(c.fd); err != nil {
		_ = c.failWrite(err)
		return
	}
	c.armed = true
}

// flush writes buffered output; called when the socket became writable.
func (c *Conn) flush() {
	if c.state == stateClosed || c.Buffered() == 0 {
		return
	}
	for c.outOff < len(c.out) {
		n, err := unix.Write(c.fd, c.out[c.outOff:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.arm()
			return
		case err != nil:
			_ = c.failWrite(err)
			return
		}
		c.outOff += n
	}
	c.out, c.outOff = c.out[:0], 0
	if cap(c.out) > maxKeptOut {
		c.out = nil
	}
	if c.r.drainer != nil {
		c.r.drainer.OnDrain(c)
	}
}

// Close closes the connection. OnClose(c, err) follows from the loop (err
// nil becomes ErrConnClosed). Buffered output gets one last non-blocking
// write attempt. Closing a closed connection does nothing.
func (c *Conn) Close(err error) {
	if err == nil {
		err = ErrConnClosed
	}
	if c.state == stateClosed || c.state == stateDialing || c.state == stateAccepting {
		return
	}
	c.closeNow(err, false, true)
}

// closeNow tears the connection down. fromGnet: gnet is closing gc itself.
// gnet closes its descriptor; the reactor closes only its own.
// later: report OnClose from a closure instead of inside this call.
func (c *Conn) closeNow(err error, fromGnet, later bool) {
	if c.state == stateClosed {
		return
	}
	r := c.r
	c.state = stateClosed
	c.wantPause = false
	if c.Buffered() > 0 && c.werr == nil {
		_, _ = unix.Write(c.fd, c.out[c.outOff:])
	}
	if c.armed {
		r.wp.remove(c.fd)
		c.armed = false
	}
	delete(r.conns, c.fd)
	r.nOpen.Add(-1)
	if c.gc != nil && !fromGnet {
		if r.cur == c {
			c.closeReq = true
		} else {
			gc := c.gc
			c.gc = nil
			_ = r.el.Close(gc)
		}
	}
	if c.ownFd {
		_ = unix.Close(c.fd)
	}
	c.fd, c.ownFd = -1, false
	c.in, c.out, c.outOff = nil, nil, 0
	if later && !r.closing {
		if r.Submit(func() { r.handler.OnClose(c, err) }) == nil {
			return
		}
	}
	r.handler.OnClose(c, err)
}
