package node

import (
	"fmt"
	"runtime"
	"testing"
)

// TestPassAllocatesNothing: a pass (a message to an echo node and back,
// both nodes in this process) allocates nothing in steady state, in both
// modes and both handler styles that do not copy by definition. Received
// messages are recycled (msgPool); a regression that allocates per message
// on either node shows as one allocation per pass or more.
func TestPassAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop messages at random; checked in the normal run")
	}
	const passes = 2000
	for _, async := range []bool{false, true} {
		for _, mode := range []ReceiveMode{ReceiveInline, ReceiveWorkers} {
			for _, inflight := range []int{1, 16} {
				t.Run(fmt.Sprintf("async=%v/%v/inflight=%d", async, mode, inflight), func(t *testing.T) {
					r := newPassRig(t, async, mode, inflight)
					if err := r.run(500); err != nil { // connect, grow queues, fill the pool
						t.Fatal(err)
					}
					var before, after runtime.MemStats
					runtime.ReadMemStats(&before)
					if err := r.run(passes); err != nil {
						t.Fatal(err)
					}
					runtime.ReadMemStats(&after)
					allocs := after.Mallocs - before.Mallocs
					t.Logf("%d allocations in %d passes", allocs, passes)
					// A few stray allocations of the runtime (timers, the GC)
					// are tolerated; one per 20 passes is not.
					if allocs > passes/20 {
						t.Errorf("%d allocations in %d passes (%.2f per pass), want 0 per pass",
							allocs, passes, float64(allocs)/passes)
					}
				})
			}
		}
	}
}
