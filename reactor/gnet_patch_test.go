package reactor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"github.com/panjf2000/gnet/v2/pkg/queue"
	"golang.org/x/sys/unix"
)

// TestBuiltWithPatchedGnet: builds of this module use the patched gnet in
// third_party/gnet, whose poller does not call runtime.Gosched before each
// blocking epoll_wait (see third_party/gnet/CHIRP.md). Dropping the replace
// directive in go.mod, or the patch, brings back a thread hand-off per idle
// poll; this catches both.
func TestBuiltWithPatchedGnet(t *testing.T) {
	guard(t)
	fn := runtime.FuncForPC(reflect.ValueOf((*netpoll.Poller).Polling).Pointer())
	file, _ := fn.FileLine(fn.Entry())
	if !strings.Contains(file, "/third_party/gnet/pkg/netpoll/") {
		t.Fatalf("gnet's poller is compiled from %s, not from third_party/gnet", file)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`msec = -1\s*\n\s*runtime\.Gosched\(\)`).Match(src) {
		t.Errorf("%s calls runtime.Gosched before every blocking poll: the patch is missing", file)
	}
}

// TestBusyLoopYieldsBeforeTheRuntimePreemptsIt: a loop that never parks
// (here one busy-polling for a second after a round trip) passes through the
// scheduler every couple of milliseconds (the patch's yieldEvery), so the
// runtime never has to force it off its thread. A forced preemption is a
// SIGURG to the loop's thread (and, mid-syscall, the loop's P handed to
// another thread); without the yield one came every 20 ms or so.
func TestBusyLoopYieldsBeforeTheRuntimePreemptsIt(t *testing.T) {
	guard(t)
	if strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1") {
		t.Fatal("GODEBUG=asyncpreemptoff=1: the runtime sends no preemption signal to count")
	}
	r, err := Start(Config{ListenV4: "127.0.0.1", Handler: echoHandler(), BusyPoll: time.Second})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer r.Close()
	c := dialTCP(t, fmt.Sprintf("127.0.0.1:%d", r.Port()))
	defer c.Close()

	urg := make(chan os.Signal, 256)
	signal.Notify(urg, syscall.SIGURG)
	defer signal.Stop(urg)
	roundTrip(t, c, []byte("spin"))
	time.Sleep(400 * time.Millisecond) // the loop busy-polls all along
	signal.Stop(urg)
	got := len(urg)
	t.Logf("%d preemption signals while the loop busy-polled for 400ms", got)
	// The test goroutine, the runtime's GC and the dial add a few at most.
	if got >= 8 {
		t.Fatalf("%d preemption signals in 400ms of busy polling (about 20 without the patch's yield): the loop does not yield, so the runtime preempts it", got)
	}
}

// TestLoopLetsTheGoroutinesItReadiedRunFirst: a goroutine the loop makes
// runnable (a handler worker, a Send's caller) runs on the loop's own
// thread before the loop sleeps in epoll_wait (beforeBlock, through the
// patch's BeforeBlock). With one P that is the only way it runs at once:
// otherwise the loop's thread sleeps holding the P, and the goroutine waits
// for the runtime to take the P away and start another thread for it. What
// the goroutine submits meanwhile runs when the loop is back, without a
// wake-up datagram.
func TestLoopLetsTheGoroutinesItReadiedRunFirst(t *testing.T) {
	guard(t)
	if beforeBlockIndex == nil {
		t.Fatal("gnet.Options has no BeforeBlock: this module builds with the patched gnet in third_party/gnet")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))

	type job struct {
		c    *Conn
		b    []byte
		loop int // the loop's thread
	}
	type tids struct{ loop, woken int }
	work := make(chan job)      // the loop, to the worker
	ran := make(chan tids, 100) // the worker's reports
	var r *Reactor
	started := make(chan struct{}) // r is set
	go func() {
		<-started
		for j := range work {
			ran <- tids{j.loop, unix.Gettid()}
			// Answer from the worker, through the loop, as a node's
			// handler workers do.
			_ = r.Submit(func() { _ = j.c.Write(j.b) })
		}
	}()
	defer close(work)
	h := &funcs{data: func(c *Conn, b []byte) int {
		work <- job{c, append([]byte(nil), b...), unix.Gettid()} // the worker waits: this readies it
		return len(b)
	}}
	var err error
	r, err = Start(Config{ListenV4: "127.0.0.1", Handler: h})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer r.Close()
	close(started)
	c := dialTCP(t, fmt.Sprintf("127.0.0.1:%d", r.Port()))
	defer c.Close()
	roundTrip(t, c, []byte("ready"))
	<-ran

	const rounds = 20
	wakes := r.wakes.Load()
	same := 0
	for i := 0; i < rounds; i++ {
		roundTrip(t, c, []byte("ready"))
		select {
		case got := <-ran:
			if got.loop == got.woken {
				same++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the readied goroutine did not run")
		}
	}
	wakes = r.wakes.Load() - wakes
	t.Logf("the readied goroutine ran on the loop's thread %d of %d times; %d wake-up datagrams", same, rounds, wakes)
	if same < rounds*3/4 {
		t.Errorf("the readied goroutine ran on the loop's thread %d of %d times: the loop slept before it ran", same, rounds)
	}
	if wakes > rounds/4 {
		t.Errorf("%d wake-up datagrams for %d answers submitted while the loop yielded", wakes, rounds)
	}
}

// TestYieldInACallback: a callback that readied a goroutine lets it run
// at once with Reactor.Yield. What the goroutine submits meanwhile needs
// no wake-up datagram and still runs before the loop sleeps, even though
// the callback does not take it: the loop would otherwise sleep with a
// closure queued and the connection's answer never left.
func TestYieldInACallback(t *testing.T) {
	guard(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	type job struct {
		c *Conn
		b []byte
	}
	work := make(chan job, 1)
	var rp atomic.Pointer[Reactor]
	go func() {
		for j := range work {
			_ = rp.Load().Submit(func() { _ = j.c.Write(j.b) })
		}
	}()
	defer close(work)
	var yielded atomic.Int64
	h := &funcs{data: func(c *Conn, b []byte) int {
		work <- job{c, append([]byte(nil), b...)}
		if rp.Load().Yield() {
			yielded.Add(1)
		}
		return len(b)
	}}
	r, err := Start(Config{ListenV4: "127.0.0.1", Handler: h})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	rp.Store(r)
	defer r.Close()
	c := dialTCP(t, fmt.Sprintf("127.0.0.1:%d", r.Port()))

	const rounds = 20
	wakes := r.wakes.Load()
	for i := 0; i < rounds; i++ {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		msg := []byte{'a' + byte(i)}
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write: %v", err)
		}
		var got [1]byte
		if _, err := io.ReadFull(c, got[:]); err != nil || got != [1]byte(msg) {
			t.Fatalf("round %d: answer %q, %v: the answer submitted during the yield did not run", i, got, err)
		}
	}
	wakes = r.wakes.Load() - wakes
	if y := yielded.Load(); y < rounds*3/4 {
		t.Errorf("Yield yielded %d times of %d with a goroutine readied", y, rounds)
	}
	if wakes > rounds/4 {
		t.Errorf("%d wake-up datagrams for %d answers submitted during a yield", wakes, rounds)
	}
}

// TestBeforeBlockRunsOncePerIdleSpell: during a busy poll the patched
// poller calls BeforeBlock once when it runs out of events, not on each of
// the polls that spin (the reactor's hook reads runtime/metrics, which
// takes the scheduler's lock).
func TestBeforeBlockRunsOncePerIdleSpell(t *testing.T) {
	guard(t)
	p, err := netpoll.OpenPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var calls atomic.Int64
	p.BusyPoll = 100 * time.Millisecond
	p.BeforeBlock = func() bool { calls.Add(1); return false }
	ended := make(chan error, 1)
	go func() { ended <- p.Polling(func(int, netpoll.IOEvent, netpoll.IOFlags) error { return nil }) }()
	ran := make(chan struct{})
	if err := p.Trigger(queue.HighPriority, func(any) error { close(ran); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	<-ran
	time.Sleep(50 * time.Millisecond) // within the busy poll that follows the task
	got := calls.Load()
	if err := p.Trigger(queue.HighPriority, func(any) error { return gerrors.ErrEngineShutdown }, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; !errors.Is(err, gerrors.ErrEngineShutdown) {
		t.Fatalf("Polling ended with %v", err)
	}
	t.Logf("BeforeBlock ran %d times in 50ms of busy polling", got)
	if got < 1 || got > 2 {
		t.Fatalf("BeforeBlock ran %d times in 50ms of busy polling, want once", got)
	}
}
