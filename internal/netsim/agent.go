package netsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/heap"
	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/perf"
)

// An agent is this test binary run again on a host, driving one chirp
// node there: the parent sends it requests on stdin, one JSON object a
// line, and it answers each on stdout, in the order they finish.

// agentEnv makes a test binary an agent (see RunAgentIfChild).
const agentEnv = "CHIRP_NETSIM_AGENT"

// RunAgentIfChild serves as an agent and exits when the process was
// started as one by Host.StartAgent; otherwise it returns at once. Call it
// first in TestMain.
func RunAgentIfChild() {
	if os.Getenv(agentEnv) == "" {
		return
	}
	a := &agent{out: json.NewEncoder(os.Stdout)}
	os.Exit(a.serve(os.Stdin))
}

// NodeSpec is the node an agent starts.
type NodeSpec struct {
	Async bool
	// Chain is the path of the node's certificate chain (`chirp certs`).
	// Without one and without DisableTLS, the node has the zero Config's
	// security: encryption on, no credentials.
	Chain      string
	DisableTLS bool
	Timeout    time.Duration
	ReuseTime  time.Duration
	MaxSlots   int
	// Hold keeps every received message (its slot taken) until Release.
	Hold bool
	// Echo makes the node perf's echo: every message goes back to its
	// sender.
	Echo bool
	// RouteTo makes the node a relay (perf.StartRelay, a node.Router) to
	// these addresses, "ip:port".
	RouteTo []string
	// Work is how long the node takes for each received message before
	// it releases it (a slow worker).
	Work time.Duration
}

func (s NodeSpec) config(bind netip.Addr) node.Config {
	return node.Config{
		Port: node.AnyPort, BindV4: bind, DisableV6: true,
		Asynchronous: s.Async, Timeout: s.Timeout, ReuseTime: s.ReuseTime, MaxSlots: s.MaxSlots,
		DisableEncryption: s.DisableTLS, CertChainPEM: s.Chain,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// SendSpec is a load of sends (Send, waiting for each) from an agent's
// node.
type SendSpec struct {
	// To are the destinations, "ip:port".
	To []string
	// Lanes is the number of goroutines sending to each destination, each
	// one message at a time (0: 1).
	Lanes int
	// Count is the number of sends of each lane; Duration stops the lanes
	// after this long instead.
	Count    int
	Duration time.Duration
	// Size of each message's data.
	Size int
	// Pace is the pause between two sends of a lane.
	Pace time.Duration
}

// SendResult is what a load did.
type SendResult struct {
	// OK lists the identities (hex) of the sends that succeeded.
	OK []string
	// PerTarget counts successes by destination.
	PerTarget map[string]int
	// Errors counts failed sends by kind ("timeout", "cannot connect", …).
	Errors map[string]int
	// FirstError is the first failure's text.
	FirstError string
	// Sends is the number of sends started.
	Sends int
	// Slowest is the longest time one send took.
	Slowest time.Duration
	// LastFailure is when the last failed send started, from the load's
	// start (0: none failed).
	LastFailure time.Duration
}

// BenchSpec is a perf.Client run against an echo node.
type BenchSpec struct {
	Node     NodeSpec
	To       string
	InFlight int
	Duration time.Duration
	Size     int
}

// request is one line to an agent.
type request struct {
	ID    int
	Op    string     // start, send, received, stats, release, heap, bench, tcpecho, tcprtt, close
	Addr  string     `json:",omitempty"` // tcprtt
	Node  *NodeSpec  `json:",omitempty"`
	Send  *SendSpec  `json:",omitempty"`
	Bench *BenchSpec `json:",omitempty"`
}

// reply is one line from an agent.
type reply struct {
	ID       int
	Err      string         `json:",omitempty"`
	Port     int            `json:",omitempty"`
	Send     *SendResult    `json:",omitempty"`
	Received []string       `json:",omitempty"`
	From     map[string]int `json:",omitempty"`
	Stats    *node.Stats    `json:",omitempty"`
	Count    int            `json:",omitempty"`
	Heap     uint64         `json:",omitempty"`
	Bench    *Outcome       `json:",omitempty"`
	RTT      time.Duration  `json:",omitempty"`
}

// Outcome is perf.Outcome, with the error as text.
type Outcome struct {
	Passes, Failed int64
	Elapsed        time.Duration
	FirstErr       string
}

// Rate is passes per second.
func (o Outcome) Rate() float64 {
	if o.Elapsed <= 0 {
		return 0
	}
	return float64(o.Passes) / o.Elapsed.Seconds()
}

// agent is the child side.
type agent struct {
	bind    netip.Addr
	mu      sync.Mutex // out, received, held
	out     *json.Encoder
	n       *node.Node
	echo    *perf.Echo
	tcpEcho *perf.TCPEcho

	received []string
	from     map[string]int // received messages by sender address
	held     []*node.Message
	hold     bool
	wg       sync.WaitGroup
}

func (a *agent) reply(r reply) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.out.Encode(r)
}

func (a *agent) serve(in io.Reader) int {
	a.bind = netip.MustParseAddr(os.Getenv(agentEnv))
	s := bufio.NewScanner(in)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		var req request
		if err := json.Unmarshal(s.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "agent:", err)
			return 2
		}
		switch req.Op {
		case "close":
			a.wg.Wait()
			a.close()
			a.reply(reply{ID: req.ID})
			return 0
		case "start", "tcpecho":
			// Before any other request's goroutine starts: they use what
			// these set up.
			r := a.do(req)
			r.ID = req.ID
			a.reply(r)
			continue
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			r := a.do(req)
			r.ID = req.ID
			a.reply(r)
		}()
	}
	a.wg.Wait()
	a.close()
	return 0
}

func (a *agent) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if a.n != nil {
		a.release()
		_ = a.n.Close(ctx)
	}
	if a.tcpEcho != nil {
		a.tcpEcho.Close()
	}
}

func errReply(err error) reply { return reply{Err: err.Error()} }

func (a *agent) do(req request) reply {
	switch req.Op {
	case "start":
		return a.start(*req.Node)
	case "send":
		r := a.send(*req.Send)
		return reply{Send: &r}
	case "received":
		a.mu.Lock()
		defer a.mu.Unlock()
		return reply{Received: append([]string(nil), a.received...), From: maps.Clone(a.from)}
	case "stats":
		s := a.n.Stats()
		return reply{Stats: &s}
	case "release":
		return reply{Count: a.release()}
	case "heap":
		return reply{Heap: heap.InUse()}
	case "tcpecho":
		e, err := perf.ListenTCPEcho(netip.AddrPortFrom(a.bind, 0).String())
		if err != nil {
			return errReply(err)
		}
		a.tcpEcho = e
		return reply{Port: e.Port()}
	case "tcprtt":
		rtt, err := tcpRTT(req.Addr)
		if err != nil {
			return errReply(err)
		}
		return reply{RTT: rtt}
	case "bench":
		o, err := a.bench(*req.Bench)
		if err != nil {
			return errReply(err)
		}
		return reply{Bench: &o}
	}
	return errReply(fmt.Errorf("unknown op %q", req.Op))
}

func (a *agent) start(spec NodeSpec) reply {
	cfg := spec.config(a.bind)
	if spec.Echo {
		e, err := perf.StartEcho(cfg, perf.StyleInline, nil)
		if err != nil {
			return errReply(err)
		}
		a.n, a.echo = e.Node, e
		return reply{Port: e.Node.Port()}
	}
	if len(spec.RouteTo) > 0 {
		r, err := perf.StartRelay(context.Background(), cfg, spec.RouteTo)
		if err != nil {
			return errReply(err)
		}
		a.n = r.Node
		return reply{Port: r.Node.Port()}
	}
	a.hold = spec.Hold
	a.from = map[string]int{}
	cfg.ManualRelease = true
	cfg.Handler = node.HandlerFunc(func(m *node.Message) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.received = append(a.received, hex.EncodeToString(m.Identity[:]))
		a.from[m.Addr.String()]++
		if a.hold {
			a.held = append(a.held, m)
			return
		}
		if spec.Work > 0 {
			time.Sleep(spec.Work) // a.mu held: one message at a time, as a single worker
		}
		_ = m.Release()
	})
	n, err := node.Start(cfg)
	if err != nil {
		return errReply(err)
	}
	a.n = n
	return reply{Port: n.Port()}
}

// release releases the held messages and stops holding.
func (a *agent) release() int {
	a.mu.Lock()
	held := a.held
	a.held, a.hold = nil, false
	a.mu.Unlock()
	for _, m := range held {
		_ = m.Release()
	}
	return len(held)
}

// kind names the sentinel an error wraps.
func kind(err error) string {
	for _, k := range []error{node.ErrTimeout, node.ErrCannotConnect, node.ErrProtocol, node.ErrTLS,
		node.ErrShutdown, node.ErrWrite, node.ErrTooLarge} {
		if errors.Is(err, k) {
			return k.Error()
		}
	}
	return "other"
}

func (a *agent) send(spec SendSpec) SendResult {
	res := SendResult{PerTarget: map[string]int{}, Errors: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, to := range spec.To {
		for range max(spec.Lanes, 1) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := node.NewMessage(to, make([]byte, spec.Size))
				if err != nil {
					mu.Lock()
					res.Errors["other"]++
					res.FirstError = err.Error()
					mu.Unlock()
					return
				}
				for i := 0; spec.Count == 0 || i < spec.Count; i++ {
					if spec.Duration > 0 && time.Since(start) >= spec.Duration {
						return
					}
					m.NewIdentity()
					t0 := time.Now()
					err := a.n.Send(context.Background(), m)
					took := time.Since(t0)
					mu.Lock()
					res.Sends++
					res.Slowest = max(res.Slowest, took)
					if err == nil {
						res.OK = append(res.OK, hex.EncodeToString(m.Identity[:]))
						res.PerTarget[to]++
					} else {
						k := kind(err)
						res.Errors[k]++
						res.LastFailure = t0.Sub(start)
						if res.FirstError == "" {
							res.FirstError = err.Error()
						}
					}
					mu.Unlock()
					if spec.Pace > 0 {
						time.Sleep(spec.Pace)
					}
				}
			}()
		}
	}
	wg.Wait()
	return res
}

func (a *agent) bench(spec BenchSpec) (Outcome, error) {
	c, err := perf.NewClient(spec.Node.config(a.bind), perf.StyleInline)
	if err != nil {
		return Outcome{}, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	}()
	ld := perf.Load{Addr: spec.To, InFlight: spec.InFlight, Data: make([]byte, spec.Size),
		Duration: spec.Duration, WaitEcho: true}
	// A short warm-up: the connection and TLS handshakes are not measured.
	warm := ld
	warm.Duration, warm.Count = 0, int64(max(spec.InFlight, 1)*2)
	if _, err := c.Run(context.Background(), warm); err != nil {
		return Outcome{}, fmt.Errorf("warm-up: %w", err)
	}
	o, err := c.Run(context.Background(), ld)
	out := Outcome{Passes: o.Passes, Failed: o.Failed, Elapsed: o.Elapsed}
	if o.FirstErr != nil {
		out.FirstErr = o.FirstErr.Error()
	}
	return out, err
}

// tcpRTT is the median time of 5-byte ping-pongs with the TCP echo at
// addr: the round trip the network gives a program, the switch's and both
// kernels' costs included.
func tcpRTT(addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var rtts []time.Duration
	buf := make([]byte, 5)
	stop := time.Now().Add(time.Second)
	for i := 0; i < 200 && (i < 10 || time.Now().Before(stop)); i++ {
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, err
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2], nil
}

// Agent is the parent's handle on an agent process.
type Agent struct {
	// Host is where it runs; Port is its node's port, once started.
	Host *Host
	Port int

	tb     testing.TB
	in     io.WriteCloser
	enc    *json.Encoder
	mu     sync.Mutex
	next   int
	wait   map[int]chan reply
	stderr *tail
	done   chan struct{}
}

// StartAgent runs an agent on h. It ends with the test; its output is
// logged when the test failed.
func (h *Host) StartAgent(tb testing.TB) *Agent {
	tb.Helper()
	cmd := h.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), agentEnv+"="+h.Addr.String())
	a := &Agent{Host: h, tb: tb, wait: map[int]chan reply{}, stderr: &tail{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stderr = a.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	a.in, a.enc = in, json.NewEncoder(in)
	go a.read(out)
	tb.Cleanup(func() {
		// Closing stdin makes the agent close its node and exit.
		_ = in.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil { // a race report, a panic
				tb.Errorf("agent on %s: %v", h.Addr, err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			tb.Errorf("agent on %s did not end within 15 s; killed", h.Addr)
		}
		if tb.Failed() {
			tb.Logf("agent on %s:\n%s", h.Addr, a.stderr.String())
		}
	})
	return a
}

func (a *Agent) read(out io.Reader) {
	defer close(a.done)
	s := bufio.NewScanner(out)
	s.Buffer(nil, 64<<20)
	for s.Scan() {
		var r reply
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			continue
		}
		a.mu.Lock()
		ch := a.wait[r.ID]
		delete(a.wait, r.ID)
		a.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// call sends req and waits (at most limit) for the reply.
func (a *Agent) call(req request, limit time.Duration) (reply, error) {
	a.mu.Lock()
	a.next++
	req.ID = a.next
	ch := make(chan reply, 1)
	a.wait[req.ID] = ch
	err := a.enc.Encode(req)
	a.mu.Unlock()
	if err != nil {
		return reply{}, fmt.Errorf("agent on %s: %w", a.Host.Addr, err)
	}
	select {
	case r := <-ch:
		if r.Err != "" {
			return r, fmt.Errorf("agent on %s: %s: %s", a.Host.Addr, req.Op, r.Err)
		}
		return r, nil
	case <-a.done:
		return reply{}, fmt.Errorf("agent on %s ended during %s", a.Host.Addr, req.Op)
	case <-time.After(limit):
		return reply{}, fmt.Errorf("agent on %s: %s took longer than %v", a.Host.Addr, req.Op, limit)
	}
}

func (a *Agent) must(req request, limit time.Duration) reply {
	a.tb.Helper()
	r, err := a.call(req, limit)
	if err != nil {
		a.tb.Fatal(err)
	}
	return r
}

// Start starts the agent's node and returns its address.
func (a *Agent) Start(spec NodeSpec) string {
	a.tb.Helper()
	a.Port = a.must(request{Op: "start", Node: &spec}, 30*time.Second).Port
	return a.Addr()
}

// TryStart is Start returning the error.
func (a *Agent) TryStart(spec NodeSpec) error {
	r, err := a.call(request{Op: "start", Node: &spec}, 30*time.Second)
	a.Port = r.Port
	return err
}

// Addr is the node's "ip:port".
func (a *Agent) Addr() string { return fmt.Sprintf("%s:%d", a.Host.Addr, a.Port) }

// SendAsync starts a load; the result comes on the channel (which is
// closed without a result when the agent fails; the test has failed then).
func (a *Agent) SendAsync(spec SendSpec, limit time.Duration) <-chan SendResult {
	ch := make(chan SendResult, 1)
	go func() {
		defer close(ch)
		r, err := a.call(request{Op: "send", Send: &spec}, limit)
		if err != nil {
			a.tb.Error(err)
			return
		}
		ch <- *r.Send
	}()
	return ch
}

// Send runs a load and returns what it did.
func (a *Agent) Send(spec SendSpec, limit time.Duration) SendResult {
	a.tb.Helper()
	return *a.must(request{Op: "send", Send: &spec}, limit).Send
}

// Received returns the identities (hex) of every message received.
func (a *Agent) Received() []string {
	a.tb.Helper()
	return a.must(request{Op: "received"}, 30*time.Second).Received
}

// ReceivedFrom counts the messages received by sender ("ip:port").
func (a *Agent) ReceivedFrom() map[string]int {
	a.tb.Helper()
	return a.must(request{Op: "received"}, 30*time.Second).From
}

// Stats returns the node's counters.
func (a *Agent) Stats() node.Stats {
	a.tb.Helper()
	return *a.must(request{Op: "stats"}, 10*time.Second).Stats
}

// Release releases the held messages, stops holding and returns how many
// there were.
func (a *Agent) Release() int {
	a.tb.Helper()
	return a.must(request{Op: "release"}, 10*time.Second).Count
}

// TCPEcho starts a raw TCP echo on the agent's host and returns its
// address.
func (a *Agent) TCPEcho() string {
	a.tb.Helper()
	return fmt.Sprintf("%s:%d", a.Host.Addr, a.must(request{Op: "tcpecho"}, 10*time.Second).Port)
}

// TCPRTT measures the round trip to a TCP echo from the agent's host.
func (a *Agent) TCPRTT(addr string) time.Duration {
	a.tb.Helper()
	return a.must(request{Op: "tcprtt", Addr: addr}, 60*time.Second).RTT
}

// Heap returns the agent's in-use heap after a GC.
func (a *Agent) Heap() uint64 {
	a.tb.Helper()
	return a.must(request{Op: "heap"}, 10*time.Second).Heap
}

// Bench runs perf passes from a new client node on the agent.
func (a *Agent) Bench(spec BenchSpec) Outcome {
	a.tb.Helper()
	return *a.must(request{Op: "bench", Bench: &spec}, spec.Duration+60*time.Second).Bench
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if t.b.Len() > t.max {
		t.b.Next(t.b.Len() - t.max)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}
