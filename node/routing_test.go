package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/childproc"
	"github.com/gochirp/chirp/internal/heap"
)

// The routing tests run producer, router and workers as separate
// processes: the router and the workers are children of the test binary
// (TestChildRoutingNode), the producers live in the test process. A
// message whose Header is statsHeader asks a child for its routeStats.

const (
	routingEnv  = "CHIRP_CHILD_ROUTING"
	statsHeader = "routing-test-stats"
	replyHeader = "reply" // a worker replies to such messages (m.Reply)
	warmHeader  = "warm"  // a worker counts such messages apart (Warm)
)

// routeStats is what a child reports.
type routeStats struct {
	Processed int64       `json:"processed"` // worker: messages handled
	Warm      int64       `json:"warm"`      // worker: warm-up messages handled
	Seqs      []int       `json:"seqs"`      // worker: their sequence numbers (Data)
	Max       int64       `json:"max"`       // worker: most messages in its handler at once
	Heap      uint64      `json:"heap"`      // in-use heap after a GC
	Node      Stats       `json:"node"`
	Router    RouterStats `json:"router"`
}

// TestChildRoutingNode is not a test: it is a worker or the router of the
// routing tests, run in a child process. CHIRP_CHILD_ROUTING says which:
// "worker sync|async DELAY TIMEOUT" or "router PORT,PORT... TIMEOUT".
func TestChildRoutingNode(t *testing.T) {
	spec := strings.Fields(os.Getenv(routingEnv))
	if len(spec) == 0 {
		return // only in the child
	}
	timeout, err := time.ParseDuration(spec[len(spec)-1])
	if err != nil {
		childproc.Fail(err)
	}
	var cfg Config
	switch spec[0] {
	case "worker":
		delay, err := time.ParseDuration(spec[2])
		if err != nil {
			childproc.Fail(err)
		}
		cfg = testConfig(spec[1] == "async", newTestWorker(delay))
	case "router":
		var workers []netip.AddrPort
		for _, p := range strings.Split(spec[1], ",") {
			workers = append(workers, netip.MustParseAddrPort("127.0.0.1:"+p))
		}
		rt, err := NewRouter(workers...)
		if err != nil {
			childproc.Fail(err)
		}
		cfg = testConfig(false, HandlerFunc(func(m *Message) {
			if string(m.Header) != statsHeader {
				rt.ServeChirp(m)
				return
			}
			m.Data, _ = json.Marshal(routeStats{Heap: heap.InUse(), Node: m.Node().Stats(), Router: rt.Stats()})
			_ = m.Node().SendOnLoop(m, nil)
		}))
		cfg.Receive = ReceiveInline
	default:
		childproc.Fail(fmt.Errorf("unknown role %q", spec[0]))
	}
	cfg.Timeout = timeout
	if f := os.Getenv("CHIRP_CHILD_ROUTING_LOG"); f != "" { // debugging aid
		out, err := os.OpenFile(fmt.Sprintf("%s.%d", f, os.Getpid()), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			childproc.Fail(err)
		}
		cfg.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n, err := Start(cfg)
	if err != nil {
		childproc.Fail(err)
	}
	childproc.Serve(n.Port(), 120*time.Second, nil)
	_ = n.Close(context.Background())
	os.Exit(0)
}

// newTestWorker handles each message in delay, records its sequence
// number and replies when asked to.
func newTestWorker(delay time.Duration) Handler {
	var (
		mu         sync.Mutex
		seqs       []int
		processed  atomic.Int64
		warm       atomic.Int64
		in, maxIn  atomic.Int64
		reportHeap = func() uint64 { return heap.InUse() }
	)
	return HandlerFunc(func(m *Message) {
		if string(m.Header) == statsHeader {
			mu.Lock()
			st := routeStats{Processed: processed.Load(), Warm: warm.Load(), Seqs: slices.Clone(seqs), Max: maxIn.Load()}
			mu.Unlock()
			st.Heap, st.Node = reportHeap(), m.Node().Stats()
			data, _ := json.Marshal(st)
			_ = m.Reply(context.Background(), data)
			return
		}
		if string(m.Header) == warmHeader {
			warm.Add(1)
			return
		}
		k := in.Add(1)
		for {
			old := maxIn.Load()
			if k <= old || maxIn.CompareAndSwap(old, k) {
				break
			}
		}
		time.Sleep(delay)
		seq, _ := strconv.Atoi(string(m.Data))
		mu.Lock()
		seqs = append(seqs, seq)
		mu.Unlock()
		processed.Add(1)
		in.Add(-1)
		if string(m.Header) == replyHeader {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Reply(ctx, m.Data)
		}
	})
}

// startRoutingChild starts a worker or router child; it returns the
// process and its address.
func startRoutingChild(t *testing.T, spec string) (*exec.Cmd, string) {
	cmd, port := childproc.Start(t, "TestChildRoutingNode", routingEnv, spec)
	return cmd, fmt.Sprintf("127.0.0.1:%d", port)
}

// chain starts workers (each "sync DELAY" or "async DELAY") and a router
// over them, all with testConfig's Timeout; it returns the worker
// processes and addresses and the router's address.
func chain(t *testing.T, workers ...string) ([]*exec.Cmd, []string, string) {
	return chainTimeout(t, time.Second, workers...)
}

// chainTimeout is chain with the children's Timeout.
func chainTimeout(t *testing.T, timeout time.Duration, workers ...string) ([]*exec.Cmd, []string, string) {
	var cmds []*exec.Cmd
	var addrs, ports []string
	for _, w := range workers {
		cmd, a := startRoutingChild(t, "worker "+w+" "+timeout.String())
		cmds, addrs = append(cmds, cmd), append(addrs, a)
		ports = append(ports, a[strings.LastIndex(a, ":")+1:])
	}
	_, router := startRoutingChild(t, "router "+strings.Join(ports, ",")+" "+timeout.String())
	warmUp(t, router, addrs)
	return cmds, addrs, router
}

// warmUp sends warm-up messages through the router until every worker
// handled one, so that the measurements start with the router's
// connections up (at most 30 s). Every warm-up send must succeed.
func warmUp(t *testing.T, router string, workers []string) {
	t.Helper()
	cfg := testConfig(false, nil)
	cfg.Timeout = 3 * time.Second
	n := startNode(t, cfg)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.Close(ctx)
	}()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		for range workers {
			m, _ := NewMessage(router, nil)
			m.Header = []byte(warmHeader)
			if err := n.Send(ctxT(t), m); err != nil {
				// A first connection that hangs until its connect timeout
				// was the reactor's dial race (issue 14 §3): not absorbed.
				t.Errorf("warm-up: %v", err)
			}
		}
		ready := true
		for _, w := range workers {
			ready = ready && statsOf(t, n, w).Warm > 0
		}
		if ready {
			return
		}
	}
	t.Fatal("warm-up: not every worker got a message through the router within 30s")
}

// statsOf asks the child at addr for its stats.
func statsOf(t *testing.T, n *Node, addr string) routeStats {
	t.Helper()
	m, err := NewMessage(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Header = []byte(statsHeader)
	a, err := n.Request(ctxT(t), m)
	if err != nil {
		t.Fatalf("stats of %s: %v", addr, err)
	}
	var st routeStats
	if err := json.Unmarshal(a.Data, &st); err != nil {
		t.Fatalf("stats of %s: %v", addr, err)
	}
	return st
}

// sendResult is one producer send.
type sendResult struct {
	seq        int
	start, end time.Time
	err        error
}

// flood sends numbered messages to dst, one after the other (a
// synchronous producer), until stop is closed; header goes with each.
func flood(n *Node, dst string, first int, header string, stop <-chan struct{}) []sendResult {
	var out []sendResult
	for seq := first; ; seq++ {
		select {
		case <-stop:
			return out
		default:
		}
		m, _ := NewMessage(dst, []byte(strconv.Itoa(seq)))
		if header != "" {
			m.Header = []byte(header)
		}
		r := sendResult{seq: seq, start: time.Now()}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if header == replyHeader {
			var a *Message
			a, r.err = n.Request(ctx, m)
			if r.err == nil && (a.Identity != m.Identity || string(a.Data) != strconv.Itoa(seq)) {
				r.err = fmt.Errorf("reply %q with identity %s to %d (identity %s)", a.Data, a.Identity, seq, m.Identity)
			}
		} else {
			r.err = n.Send(ctx, m)
		}
		cancel()
		r.end = time.Now()
		out = append(out, r)
	}
}

func countOK(rs []sendResult) int {
	k := 0
	for _, r := range rs {
		if r.err == nil {
			k++
		}
	}
	return k
}

// TestRoutingThrottles: a synchronous producer floods through a router to
// a worker that takes 1 ms per message. The producer goes at the worker's
// pace, router and worker stay flat in memory, nothing is lost.
func TestRoutingThrottles(t *testing.T) {
	_, workers, router := chain(t, "sync 1ms")
	p := startNode(t, testConfig(false, nil))
	stop := make(chan struct{})
	done := make(chan []sendResult, 1)
	go func() { done <- flood(p, router, 0, "", stop) }()

	time.Sleep(500 * time.Millisecond) // warm-up
	var w0, r0 routeStats
	var t0 time.Time
	var rs []sendResult
	func() {
		defer func() { close(stop); rs = <-done }()
		w0, r0 = statsOf(t, p, workers[0]), statsOf(t, p, router)
		t0 = time.Now()
		time.Sleep(2500 * time.Millisecond)
	}()
	w1, r1 := statsOf(t, p, workers[0]), statsOf(t, p, router)

	// Producer completions in [t0, end] against the worker's count in the
	// same window (both stats were read just before and after).
	var prod int
	for _, r := range rs {
		if r.err != nil {
			t.Fatalf("send %d: %v", r.seq, r.err)
		}
		if !r.end.Before(t0) {
			prod++
		}
	}
	work := w1.Processed - w0.Processed
	t.Logf("producer %d sends, %d completed in the window; worker %d in the window (%d in all); heap router %d→%d, worker %d→%d",
		len(rs), prod, work, w1.Processed, r0.Heap, r1.Heap, w0.Heap, w1.Heap)
	if work < 200 {
		t.Fatalf("worker handled only %d messages in the window", work)
	}
	if d := float64(prod) / float64(work); d < 0.9 || d > 1.1 {
		t.Errorf("producer completed %d, worker handled %d: not within 10%%", prod, work)
	}
	// Nothing lost: every send succeeded and was handled exactly once.
	if int(w1.Processed) != len(rs) {
		t.Errorf("worker handled %d, producer sent %d", w1.Processed, len(rs))
	}
	seen := map[int]bool{}
	for _, s := range w1.Seqs {
		if seen[s] {
			t.Errorf("message %d handled twice", s)
		}
		seen[s] = true
	}
	if r1.Router.Failed != 0 || r1.Router.Forwarded != uint64(len(rs))+uint64(w1.Warm) {
		t.Errorf("router: %+v, producer sent %d (and %d warm-up messages)", r1.Router, len(rs), w1.Warm)
	}
	// Flat memory: the router and the worker hold one message at a time.
	const slack = 2 << 20
	if r1.Heap > r0.Heap+slack || w1.Heap > w0.Heap+slack {
		t.Errorf("heap grew: router %d→%d, worker %d→%d", r0.Heap, r1.Heap, w0.Heap, w1.Heap)
	}
	if r1.Node.SlotsInUse > 1 || r1.Router.Routes > int(work) {
		t.Errorf("router holds %d slots and %d routes", r1.Node.SlotsInUse, r1.Router.Routes)
	}
}

// TestRoutingPropagatesTimeouts: the worker is frozen (SIGSTOP) while a
// synchronous producer floods through the router. The send in flight
// fails within about 2×Timeout, none succeeds for a message the worker
// did not release, and after SIGCONT messages flow again.
func TestRoutingPropagatesTimeouts(t *testing.T) {
	const timeout = time.Second // the router's and the worker's (testConfig's)
	cmds, workers, router := chain(t, "sync 1ms")
	// The producer waits longer than the router: were a failed forward
	// acknowledged, its send would succeed instead of timing out.
	cfg := testConfig(false, nil)
	cfg.Timeout = 2 * timeout
	p := startNode(t, cfg)
	stop := make(chan struct{})
	done := make(chan []sendResult, 1)
	go func() { done <- flood(p, router, 0, "", stop) }()
	var rs []sendResult
	var stopped, resumed time.Time
	func() {
		defer func() { close(stop); rs = <-done }()
		time.Sleep(500 * time.Millisecond)
		childproc.Freeze(t, cmds[0])
		stopped = time.Now() // every thread of the worker is stopped now
		resumeOnce := sync.OnceFunc(func() { _ = cmds[0].Process.Signal(syscall.SIGCONT) })
		defer resumeOnce() // never leave it frozen
		time.Sleep(3 * timeout)
		resumed = time.Now()
		resumeOnce()
		time.Sleep(6 * timeout) // reconnect: debounce, fail-fast window
	}()
	w := statsOf(t, p, workers[0])
	handled := map[int]bool{}
	for _, s := range w.Seqs {
		handled[s] = true
	}
	var inFlight, failed, okAfter int
	for _, r := range rs {
		switch {
		case r.err == nil && !handled[r.seq]:
			t.Errorf("send %d succeeded, but the worker never handled it", r.seq)
		case r.err == nil && r.end.After(stopped.Add(100*time.Millisecond)) && r.end.Before(resumed):
			t.Errorf("send %d succeeded %v after the worker was stopped", r.seq, r.end.Sub(stopped))
		case r.err == nil && r.start.After(resumed):
			okAfter++
		case r.err != nil:
			failed++
			if !errors.Is(r.err, ErrTimeout) && !errors.Is(r.err, ErrConnLost) {
				t.Errorf("send %d: %v", r.seq, r.err)
			}
		}
		if r.start.Before(stopped) && r.end.After(stopped) {
			inFlight++
			if r.err == nil && r.end.After(stopped.Add(100*time.Millisecond)) {
				t.Errorf("send %d in flight at the stop succeeded after %v", r.seq, r.end.Sub(stopped))
			}
			if r.end.Sub(stopped) > 2*timeout+time.Second {
				t.Errorf("send %d in flight at the stop ended %v later (%v)", r.seq, r.end.Sub(stopped), r.err)
			}
		}
	}
	t.Logf("%d sends: %d failed, %d in flight at the stop, %d succeeded after SIGCONT; worker handled %d",
		len(rs), failed, inFlight, okAfter, len(w.Seqs))
	if inFlight != 1 || failed == 0 {
		t.Errorf("%d sends in flight at the stop, %d failed", inFlight, failed)
	}
	if okAfter < 100 {
		t.Errorf("only %d sends succeeded after SIGCONT", okAfter)
	}
}

// TestRoutingFansOut: one router over 1, 2 and 4 workers (1 ms per
// message each), fed by 8 synchronous producers (8 connections: a
// synchronous router holds one message per connection). The router sends
// each message to its least-loaded worker. The table is logged; the test
// asserts only that throughput does not collapse as workers are added
// and that every worker gets work (2 cores: scaling ends early).
func TestRoutingFansOut(t *testing.T) {
	const producers = 8
	ps := make([]*Node, producers)
	for i := range ps {
		cfg := testConfig(false, nil)
		cfg.Timeout = 10 * time.Second // a throughput test: generous on a loaded machine
		ps[i] = startNode(t, cfg)
	}
	rates := map[int]float64{}
	for _, k := range []int{1, 2, 4} {
		specs := make([]string, k)
		for i := range specs {
			specs[i] = "sync 1ms"
		}
		_, workers, router := chainTimeout(t, 5*time.Second, specs...)
		stop := make(chan struct{})
		results := make(chan []sendResult, producers)
		for i, p := range ps {
			go func() { results <- flood(p, router, i*1_000_000, "", stop) }()
		}
		time.Sleep(200 * time.Millisecond)
		var before []int64
		for _, w := range workers {
			before = append(before, statsOf(t, ps[0], w).Processed)
		}
		start := time.Now()
		time.Sleep(time.Second)
		var total int64
		var per []string
		for i, w := range workers {
			d := statsOf(t, ps[0], w).Processed - before[i]
			total += d
			per = append(per, strconv.FormatInt(d, 10))
			if d == 0 {
				t.Errorf("%d workers: worker %d got no work", k, i)
			}
		}
		elapsed := time.Since(start)
		close(stop)
		for range ps {
			for _, r := range <-results {
				if r.err != nil {
					t.Errorf("%d workers: send %d: %v", k, r.seq, r.err)
				}
			}
		}
		rates[k] = float64(total) / elapsed.Seconds()
		r := statsOf(t, ps[0], router)
		t.Logf("%d workers: %6.0f messages/s (per worker: %s); router %+v, %d timeouts, %d cannot connect",
			k, rates[k], strings.Join(per, " "), r.Router, r.Node.Timeouts, r.Node.CannotConnect)
	}
	for _, k := range []int{2, 4} {
		if rates[k] < 0.7*rates[1] {
			t.Errorf("%d workers: %.0f/s, collapsed from %.0f/s with one", k, rates[k], rates[1])
		}
	}
}

// TestRoutingAsyncWorkerBehindSyncRouter is the mixed case: a synchronous
// producer sends requests through a synchronous router to an asynchronous
// worker that replies (m.Reply).
//
// The producer can rely on: every request is answered, with its identity;
// its send completes only when the worker released the message (the
// router asks the asynchronous worker for the ACK), so it goes at the
// worker's pace; nothing is lost.
//
// It cannot rely on: the worker's parallelism (the synchronous router has
// one message in flight per worker, so the worker's 16 slots hold one
// message from it at a time); and acknowledged replies: the asynchronous
// worker asks for no ACK, so its reply counts as sent when written, and a
// reply lost on the way back is noticed only by the producer's Request,
// which times out.
func TestRoutingAsyncWorkerBehindSyncRouter(t *testing.T) {
	_, workers, router := chain(t, "async 1ms")
	p := startNode(t, testConfig(false, nil))
	stop := make(chan struct{})
	done := make(chan []sendResult, 1)
	go func() { done <- flood(p, router, 0, replyHeader, stop) }()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	rs := <-done
	w := statsOf(t, p, workers[0])
	r := statsOf(t, p, router)
	handled := map[int]bool{}
	for _, s := range w.Seqs {
		handled[s] = true
	}
	for _, res := range rs {
		if res.err != nil {
			t.Errorf("request %d: %v", res.seq, res.err)
		} else if !handled[res.seq] {
			t.Errorf("request %d answered but not handled by the worker", res.seq)
		}
	}
	t.Logf("%d requests; worker handled %d, at most %d at once, ACKs out %d, in %d; router %+v",
		len(rs), w.Processed, w.Max, w.Node.AcksOut, w.Node.AcksIn, r.Router)
	if len(rs) < 100 || int(w.Processed) != len(rs) {
		t.Errorf("%d requests, worker handled %d", len(rs), w.Processed)
	}
	if w.Max != 1 {
		t.Errorf("the worker held up to %d messages from a synchronous router at once", w.Max)
	}
	// The router's forwards are acknowledged (the stats requests too);
	// the worker's replies are not.
	if w.Node.AcksOut < uint64(len(rs)) || w.Node.AcksIn != 0 {
		t.Errorf("worker sent %d ACKs and got %d", w.Node.AcksOut, w.Node.AcksIn)
	}
	if r.Router.Replies != uint64(len(rs)) || r.Router.Forwarded != uint64(len(rs))+uint64(w.Warm) || r.Router.Failed != 0 {
		t.Errorf("router: %+v after %d requests", r.Router, len(rs))
	}
}
