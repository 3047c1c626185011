package reactor

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// processBusy is how long the test process's threads were running or
// waiting to run: the sums of /proc/self/task/*/schedstat's first two
// fields. A spinning loop adds the whole time it spins to it, even on a
// machine whose cores are busy with other work, where CPU time would not
// show it. Without schedstat it falls back to CPU time (getrusage).
func processBusy(t *testing.T) time.Duration {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var sum int64
	read := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		var run, wait int64
		if _, err := fmt.Sscan(string(b), &run, &wait); err != nil {
			continue
		}
		sum += run + wait
		read++
	}
	if read > 0 {
		return time.Duration(sum)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestBusyPollKeepsTheLoopPolling checks that Config.BusyPoll reaches the
// loop (through the gnet patch): after traffic, a loop with a busy poll of
// 300ms stays running (or runnable), where one without sleeps in
// epoll_wait.
func TestBusyPollKeepsTheLoopPolling(t *testing.T) {
	guard(t)
	if !busyPollSupported() {
		t.Fatal("busyPollSupported is false: this module builds with the patched gnet in third_party/gnet")
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
		before := processBusy(t)
		time.Sleep(window)
		return processBusy(t) - before
	}
	idle := spent(0)
	busy := spent(300 * time.Millisecond)
	t.Logf("running or runnable in the %v after a round trip: %v without busy poll, %v with 300ms", window, idle, busy)
	if busy < window/2 {
		t.Fatalf("with BusyPoll 300ms the process ran or waited to run for %v in the %v after a round trip (without: %v): the loop does not poll",
			busy, window, idle)
	}
}
