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
					allocs := allocsOfPasses(t, newPassRig(t, async, mode, inflight), passes)
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

// TestTLSPassAllocatesOnlyInCryptoTLS: over TLS, the only allocations of
// a pass are crypto/tls's own: each tls.Conn.Read that must pull
// ciphertext from the transport allocates its atLeastReader (24 bytes),
// once for a batch's first record and once for the read that finds
// nothing left. That is at most 2 per batch a node decrypts: 4 per pass
// with one message in flight (each node decrypts one batch), 8 for a
// synchronous one (message, echo and the two ACKs), and well under 1 per
// pass with 16 in flight. Anything our side allocates per message or per
// record shows above that.
func TestTLSPassAllocatesOnlyInCryptoTLS(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop messages at random; checked in the normal run")
	}
	chain := chainFiles(t, "alloc CA", 1)[0]
	const passes = 2000
	for _, tc := range []struct {
		async    bool
		inflight int
		perPass  float64
	}{{false, 1, 8}, {true, 1, 4}, {true, 16, 1}} {
		t.Run(fmt.Sprintf("async=%v/inflight=%d", tc.async, tc.inflight), func(t *testing.T) {
			r := newPassRigWith(t, ReceiveInline, tc.inflight, tlsConfig(tc.async, nil, chain),
				func(n *Node) string { return at("127.0.0.2", n) })
			allocs := allocsOfPasses(t, r, passes)
			if limit := uint64(tc.perPass*passes) + passes/20; allocs > limit {
				t.Errorf("%d allocations in %d passes (%.2f per pass), want at most %.0f per pass (crypto/tls's)",
					allocs, passes, float64(allocs)/passes, tc.perPass)
			}
		})
	}
}

// allocsOfPasses warms r up (connect, grow queues, fill the pools), then
// counts the allocations of passes passes.
func allocsOfPasses(t *testing.T, r *passRig, passes int) uint64 {
	t.Helper()
	if err := r.run(500); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := r.run(passes); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocs := after.Mallocs - before.Mallocs
	t.Logf("%d allocations in %d passes (%.2f per pass)", allocs, passes, float64(allocs)/float64(passes))
	return allocs
}
