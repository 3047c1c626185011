package netsim

import (
	"testing"
	"time"
)

// TestNetSimRoutingThrottles is the routing throttling test across three
// hosts with 10 ms links (20 ms round trips): a synchronous producer sends
// as fast as it can through a synchronous relay (node.Router) to a worker
// that takes 1 ms per message. The producer completes what the worker
// handled, no more; relay and worker stay flat in memory; nothing is lost.
func TestNetSimRoutingThrottles(t *testing.T) {
	const timeout, load = 2 * time.Second, 4 * time.Second
	n := New(t)
	hosts := []*Host{n.NewHost(), n.NewHost(), n.NewHost()}
	chain := chains(t, 3)
	as := agents(t, hosts)
	producer, relay, worker := as[0], as[1], as[2]
	workerAddr := worker.Start(NodeSpec{Chain: chain[2], Timeout: timeout, Work: time.Millisecond})
	relayAddr := relay.Start(NodeSpec{Chain: chain[1], Timeout: timeout, RouteTo: []string{workerAddr}})
	producer.Start(NodeSpec{Chain: chain[0], Timeout: timeout})
	n.NetemAll(Impair{Delay: 10 * time.Millisecond})

	// Warm-up: connections and TLS sessions up.
	if r := producer.Send(SendSpec{To: []string{relayAddr}, Count: 5, Size: 100}, time.Minute); len(r.OK) != 5 {
		t.Fatalf("warm-up: %d of 5 ok: %v %s", len(r.OK), r.Errors, r.FirstError)
	}
	relayHeap0, workerHeap0 := relay.Heap(), worker.Heap()
	before := len(worker.Received())
	res := producer.SendAsync(SendSpec{To: []string{relayAddr}, Duration: load, Size: 100}, load+time.Minute)
	time.Sleep(load / 2)
	mid := len(worker.Received()) - before
	r := <-res
	handled := len(worker.Received()) - before
	relayHeap, workerHeap := relay.Heap(), worker.Heap()
	t.Logf("producer: %d sends, %d ok (%.0f/s), errors %v; worker handled %d (%d at half time); heap relay %d→%d, worker %d→%d",
		r.Sends, len(r.OK), float64(len(r.OK))/load.Seconds(), r.Errors, handled, mid, relayHeap0, relayHeap, workerHeap0, workerHeap)
	if sum(r.Errors) != 0 || len(r.OK) != r.Sends || len(r.OK) < 20 {
		t.Fatalf("producer: %d sends, %d ok, errors %v: %s", r.Sends, len(r.OK), r.Errors, r.FirstError)
	}
	// Completions match what the worker handled, within 10 % (a
	// synchronous chain: each send completes when the worker released it).
	if d := float64(len(r.OK)) / float64(handled); d < 0.9 || d > 1.1 {
		t.Errorf("producer completed %d, worker handled %d", len(r.OK), handled)
	}
	if miss := missing(r.OK, worker.Received()); len(miss) > 0 {
		t.Errorf("%d acknowledged sends never reached the worker, e.g. %s", len(miss), miss[0])
	}
	const slack = 2 << 20
	if relayHeap > relayHeap0+slack || workerHeap > workerHeap0+slack {
		t.Errorf("heap grew: relay %d→%d, worker %d→%d", relayHeap0, relayHeap, workerHeap0, workerHeap)
	}
}
