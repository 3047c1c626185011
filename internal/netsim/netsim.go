// Package netsim is a test bed of simulated hosts on one Linux machine.
//
// Each Host is a network namespace with one TAP device, addressed from
// 198.18.0.0/24 (RFC 2544's benchmarking range; nothing else is used and
// nothing leaves the machine). The test process holds the other end of
// every TAP device and is the switch between them: it forwards Ethernet
// frames between the hosts and applies, per host link, what tc netem would
// (delay, jitter, loss, reordering, a rate limit) and partitions (frames
// between two hosts dropped, or a link down without the host noticing: no
// FIN, no RST). The switch lives in user space because kernels without the
// sch_netem module (CI containers) cannot run netem; it needs only the
// standard library, golang.org/x/sys and the ip command.
//
// Programs run on a host with Host.Command, in the host's namespace, with
// a network stack of their own. Everything a Net made (namespaces, TAP
// devices, processes started through it) is removed when its test ends;
// leftovers of crashed runs are removed by the next New.
//
// It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and /dev/net/tun; New
// skips the test without them.
package netsim

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// prefix starts the name of every namespace a Net makes, followed by the
// process id (so that a sweep removes only those of dead processes).
const prefix = "nsim"

// Impair is what a host's link does to the frames the host sends, as tc
// netem on the host's interface would. The round trip between two hosts
// is the sum of their delays.
type Impair struct {
	// Delay of every frame, plus a uniform random jitter in ±Jitter. Frames
	// keep their order under jitter (as netem with a rate does): only
	// Reorder reorders.
	Delay, Jitter time.Duration
	// Loss is the probability (0..1) that a frame is dropped.
	Loss float64
	// Reorder is the probability (0..1) that a frame skips the delay, so
	// that it overtakes the frames delayed before it (netem's reorder).
	Reorder float64
	// Rate limits the link to this many bits per second (0: unlimited);
	// frames wait in a queue of at most Limit frames (0: 1000) and are
	// dropped when it is full.
	Rate  int64
	Limit int
}

// Net is a switch with the hosts attached to it.
type Net struct {
	tb    testing.TB
	id    string // prefix + pid + "x" + sequence
	mu    sync.Mutex
	hosts []*Host
	cut   map[[2]int]bool // partitioned host pairs (lower index first)
	sniff func(from, to *Host, frame []byte)
	wg    sync.WaitGroup
}

// Host is a simulated machine: a network namespace with one interface.
type Host struct {
	// Name of the host's network namespace.
	Name string
	// Addr is the host's IPv4 address.
	Addr netip.Addr

	net   *Net
	idx   int // 1.., the last byte of Addr and of the MAC address
	tap   *os.File
	ifc   string
	up    bool // link state, guarded by net.mu
	link  link
	procs []*exec.Cmd
}

var seq struct {
	sync.Mutex
	n int
}

// Available reports why the test bed cannot run here, or nil.
func Available() error {
	if !hasCaps() {
		return errors.New("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) for network namespaces")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("needs /dev/net/tun: %w", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("needs the ip command (iproute2)")
	}
	return nil
}

// New makes an empty switch, removed with everything on it when tb ends.
// It skips tb when the machine cannot run the bed (see Available).
func New(tb testing.TB) *Net {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skipf("netsim: %v", err)
	}
	sweep()
	seq.Lock()
	seq.n++
	id := fmt.Sprintf("%s%dx%d", prefix, os.Getpid(), seq.n)
	seq.Unlock()
	n := &Net{tb: tb, id: id, cut: map[[2]int]bool{}}
	tb.Cleanup(n.close)
	return n
}

// hasCaps reports whether this process has CAP_NET_ADMIN and
// CAP_SYS_ADMIN (root in a container may lack them).
func hasCaps() bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			const want = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_SYS_ADMIN
			return err == nil && caps&want == want
		}
	}
	return false
}

// sweep deletes the namespaces left by processes that no longer run.
func sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pid, _, ok := strings.Cut(rest, "x")
		if _, err := strconv.Atoi(pid); !ok || err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue
		}
		_ = exec.Command("ip", "netns", "delete", name).Run()
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NewHost adds a host at 198.18.0.N/24, N counting from 1.
func (n *Net) NewHost() *Host {
	n.tb.Helper()
	n.mu.Lock()
	idx := len(n.hosts) + 1
	n.mu.Unlock()
	if idx > 254 {
		n.tb.Fatal("netsim: at most 254 hosts")
	}
	h := &Host{
		Name: fmt.Sprintf("%sh%d", n.id, idx),
		Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(idx)}),
		net:  n, idx: idx, up: true,
		ifc: fmt.Sprintf("nsim%d", idx),
	}
	h.link.wake = make(chan struct{}, 1)
	h.link.stop = make(chan struct{})
	if err := h.create(); err != nil {
		n.tb.Fatalf("netsim: host %d: %v", idx, err)
	}
	n.mu.Lock()
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	n.wg.Add(2)
	go h.read()
	go h.link.run(h)
	return h
}

// create makes the namespace and, inside it, the TAP device whose file
// this process keeps.
func (h *Host) create() error {
	if err := ip("netns", "add", h.Name); err != nil {
		return err
	}
	tap, err := openTAP(h.Name, h.ifc)
	if err != nil {
		return err
	}
	h.tap = tap
	mac := fmt.Sprintf("02:00:c6:12:00:%02x", h.idx)
	for _, args := range [][]string{
		{"-n", h.Name, "link", "set", h.ifc, "address", mac},
		{"-n", h.Name, "addr", "add", h.Addr.String() + "/24", "dev", h.ifc},
		{"-n", h.Name, "link", "set", h.ifc, "up"},
		{"-n", h.Name, "link", "set", "lo", "up"},
	} {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// openTAP creates a TAP device named ifc in namespace ns: a thread enters
// the namespace, opens the device and ends; the file stays attached to the
// device. The thread ends locked, so the runtime discards it rather than
// run other goroutines in the wrong namespace.
func openTAP(ns, ifc string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		f, err := tapOpen(ifc)
		ch <- result{f, err}
	}()
	r := <-ch
	return r.f, r.err
}

func tapOpen(ifc string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	req, err := unix.NewIfreq(ifc)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	req.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, req); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", ifc, err)
	}
	// Non-blocking, so that the runtime poller serves it and Close ends a
	// pending Read.
	return os.NewFile(uintptr(fd), ifc), nil
}

// Hosts returns the hosts in the order they were made.
func (n *Net) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Host(nil), n.hosts...)
}

// Netem sets what h's link does to the frames h sends from now on.
func (n *Net) Netem(h *Host, im Impair) {
	h.link.mu.Lock()
	h.link.im = im
	h.link.mu.Unlock()
}

// NetemAll sets im on the link of every host.
func (n *Net) NetemAll(im Impair) {
	for _, h := range n.Hosts() {
		n.Netem(h, im)
	}
}

// Link plugs h's link in (up) or pulls it (down): while down, every frame
// from or to h is dropped, those on the wire too. h's interface stays up,
// so neither h nor its peers learn of it: no FIN, no RST, no error.
func (n *Net) Link(h *Host, up bool) {
	n.mu.Lock()
	h.up = up
	n.mu.Unlock()
}

// Partition drops every frame between a and each of others, both ways,
// until Heal.
func (n *Net) Partition(a *Host, others ...*Host) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range others {
		n.cut[pair(a, b)] = true
	}
}

// Heal ends every partition.
func (n *Net) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
}

// Sniff calls fn with every frame the switch delivers, after the
// impairments, on the switch's goroutines: it must be quick and must not
// keep frame. nil stops it.
func (n *Net) Sniff(fn func(from, to *Host, frame []byte)) {
	n.mu.Lock()
	n.sniff = fn
	n.mu.Unlock()
}

func pair(a, b *Host) [2]int {
	if a.idx > b.idx {
		a, b = b, a
	}
	return [2]int{a.idx, b.idx}
}

// read takes the frames h sends into its link.
func (h *Host) read() {
	defer h.net.wg.Done()
	buf := make([]byte, 65536)
	for {
		k, err := h.tap.Read(buf)
		if err != nil {
			return // closed
		}
		if k < 14 {
			continue
		}
		h.link.put(h, append([]byte(nil), buf[:k]...))
	}
}

// deliver hands a frame from h to its destination hosts: the one whose MAC
// address it names, or all others for broadcast and multicast.
func (h *Host) deliver(frame []byte) {
	n := h.net
	n.mu.Lock()
	if !h.up {
		n.mu.Unlock()
		return
	}
	var dsts []*Host
	dst := frame[:6]
	if dst[0]&1 == 0 && bytes.Equal(dst[:5], []byte{2, 0, 0xc6, 0x12, 0}) {
		if i := int(dst[5]); i >= 1 && i <= len(n.hosts) && i != h.idx {
			dsts = append(dsts, n.hosts[i-1])
		}
	} else {
		for _, o := range n.hosts {
			if o != h {
				dsts = append(dsts, o)
			}
		}
	}
	j := 0
	for _, d := range dsts {
		if d.up && !n.cut[pair(h, d)] {
			dsts[j] = d
			j++
		}
	}
	dsts = dsts[:j]
	sniff := n.sniff
	n.mu.Unlock()
	for _, d := range dsts {
		if sniff != nil {
			sniff(h, d, frame)
		}
		// A full TAP queue drops the frame, as a real interface would.
		_, _ = d.tap.Write(frame)
	}
}

// link is the queue of one host's link: frames wait there for their delay
// and for the rate limit.
type link struct {
	mu   sync.Mutex
	im   Impair
	free time.Time // when the rate-limited wire is free again
	last time.Time // due time of the last delayed frame (order)
	q    []queued  // ordered by due
	wake chan struct{}
	stop chan struct{}
	rnd  *rand.Rand
}

type queued struct {
	due   time.Time
	frame []byte
}

// put applies the impairments to a frame h sent: drops it, delivers it at
// once or queues it.
func (l *link) put(h *Host, frame []byte) {
	l.mu.Lock()
	im := l.im
	if im == (Impair{}) && len(l.q) == 0 {
		l.mu.Unlock()
		h.deliver(frame)
		return
	}
	if l.rnd == nil {
		l.rnd = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(h.idx)))
	}
	limit := im.Limit
	if limit == 0 {
		limit = 1000
	}
	if (im.Loss > 0 && l.rnd.Float64() < im.Loss) || len(l.q) >= limit {
		l.mu.Unlock()
		return
	}
	now := time.Now()
	due := now
	if im.Rate > 0 {
		start := now
		if l.free.After(now) {
			start = l.free
		}
		l.free = start.Add(time.Duration(int64(len(frame)+24) * 8 * int64(time.Second) / im.Rate)) // +preamble, FCS, gap
		due = l.free
	}
	if im.Reorder > 0 && l.rnd.Float64() < im.Reorder {
		// Out of order: ahead of every frame still waiting for its delay.
	} else {
		d := im.Delay
		if im.Jitter > 0 {
			d += time.Duration(l.rnd.Int64N(int64(2*im.Jitter)+1)) - im.Jitter
		}
		due = due.Add(max(d, 0))
		if l.last.After(due) {
			due = l.last
		}
		l.last = due
	}
	i := len(l.q)
	for i > 0 && l.q[i-1].due.After(due) {
		i--
	}
	l.q = append(l.q, queued{})
	copy(l.q[i+1:], l.q[i:])
	l.q[i] = queued{due, frame}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run delivers queued frames when they are due.
func (l *link) run(h *Host) {
	defer h.net.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var out [][]byte
	for {
		l.mu.Lock()
		now := time.Now()
		k := 0
		for k < len(l.q) && !l.q[k].due.After(now) {
			out = append(out, l.q[k].frame)
			k++
		}
		l.q = l.q[:copy(l.q, l.q[k:])]
		wait := time.Hour
		if len(l.q) > 0 {
			wait = l.q[0].due.Sub(now)
		}
		l.mu.Unlock()
		for i, f := range out {
			h.deliver(f)
			out[i] = nil
		}
		out = out[:0]
		if k > 0 {
			continue
		}
		if wait <= 2*time.Millisecond {
			// The runtime's timers fire up to a millisecond late, which
			// would double a 1 ms round trip; a sleeping thread is
			// precise to some 100 µs.
			ts := unix.NsecToTimespec(int64(wait))
			_ = unix.Nanosleep(&ts, nil)
			continue
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-l.wake:
		case <-l.stop:
			return
		}
	}
}

// Command runs name with args on h, in h's namespace; it is killed when
// the test ends, if it still runs.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
	h.net.mu.Lock()
	h.procs = append(h.procs, cmd)
	h.net.mu.Unlock()
	return cmd
}

func (h *Host) stopProcs() {
	h.net.mu.Lock()
	procs := h.procs
	h.net.mu.Unlock()
	for _, c := range procs {
		if c.Process != nil {
			_ = c.Process.Kill() // fails harmlessly once it ended
		}
	}
}

// close stops the processes, the switch and removes the namespaces.
func (n *Net) close() {
	hosts := n.Hosts()
	for _, h := range hosts {
		h.stopProcs()
	}
	for _, h := range hosts {
		close(h.link.stop)
		_ = h.tap.Close()
	}
	n.wg.Wait()
	for _, h := range hosts {
		if err := ip("netns", "delete", h.Name); err != nil {
			n.tb.Errorf("netsim: %v", err)
		}
	}
}
