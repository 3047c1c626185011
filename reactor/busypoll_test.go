package reactor

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time (user and system) the test process used.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBusyPollKeepsTheLoopPolling checks that Config.BusyPoll reaches the
// loop (through the gnet patch): after traffic, a loop with a busy poll of
// 300ms keeps a core busy, where one without sleeps in epoll_wait.
func TestBusyPollKeepsTheLoopPolling(t *testing.T) {
	guard(t)
	if !BusyPollSupported() {
		t.Fatal("BusyPollSupported is false: this module builds with the patched gnet in third_party/gnet")
	}
	window := 200 * time.Millisecond
	spent := func(busy time.Duration) time.Duration {
		r, err := Start(Config{ListenV4: "127.0.0.1", Handler: echoHandler(), BusyPoll: busy})
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		defer r.Close()
		c := dialTCP(t, fmt.Sprintf("127.0.0.1:%d", r.Port()))
		defer c.Close()
		roundTrip(t, c, []byte("wake up"))
		before := processCPU(t)
		time.Sleep(window)
		return processCPU(t) - before
	}
	idle := spent(0)
	busy := spent(300 * time.Millisecond)
	t.Logf("CPU in the %v after a round trip: %v without busy poll, %v with 300ms", window, idle, busy)
	// A spinning loop takes a whole core when it gets one; a third of the
	// window leaves room for a loaded machine.
	if busy < window/3 {
		t.Fatalf("with BusyPoll 300ms the process used %v of CPU in %v after a round trip (without: %v): the loop does not poll",
			busy, window, idle)
	}
}
