package perf

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRunMeasuresRelayScenarios: with Relay, the passes of relay sync
// single 5B and relay async pooled16 5B go through an in-process relay,
// each compared with the same scenario direct. It asserts what was
// measured, not how fast.
func TestRunMeasuresRelayScenarios(t *testing.T) {
	var progress strings.Builder
	o := Options{Sizes: []int{5}, InFlight: []int{1, 16}, Relay: true, Runs: 2, RunTime: 30 * time.Millisecond,
		Warmup: 10 * time.Millisecond, Timeout: time.Second, Progress: &progress}
	inProcessPeers(&o)
	var relays int
	o.RelayPeer = func(_ context.Context, spec PeerSpec, target string) (*Peer, error) {
		relays++
		return InProcessRelay(echoConfig(spec.Async), target)
	}
	rep, err := Run(testCtx(t, 60*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() != 0 {
		t.Fatalf("failures:\n%s", progress.String())
	}
	direct := map[string]float64{}
	for _, r := range rep.Results {
		if r.Kind == KindChirp && !r.Relay {
			direct[r.Name] = r.Median
		}
	}
	got := map[string]bool{}
	for _, r := range rep.Results {
		if !r.Relay {
			continue
		}
		got[r.Name] = true
		twin := strings.TrimPrefix(r.Name, "relay ")
		if !r.OK() || r.Passes <= 0 || direct[twin] <= 0 || r.VsDirect != r.Median/direct[twin] {
			t.Errorf("%s: %+v (direct %v)", r.Name, r, direct[twin])
		}
	}
	if !got["relay sync single 5B"] || !got["relay async pooled16 5B"] || len(got) != 2 || relays != 2 {
		t.Errorf("relay scenarios %v, %d relays started", got, relays)
	}
	if rep.Peers["relay sync"] == "" || rep.Peers["relay async"] == "" {
		t.Errorf("peers: %v", rep.Peers)
	}
	var table strings.Builder
	if err := WriteTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "vs direct") {
		t.Errorf("table without the vs direct column:\n%s", table.String())
	}

	// Without RelayPeer the relay scenarios are skipped, not failed.
	o.RelayPeer, o.Modes = nil, []string{"sync"}
	rep, err = Run(testCtx(t, 60*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Relay && r.Skipped != "no relay" {
			t.Errorf("%s without RelayPeer: %+v", r.Name, r)
		}
	}
	for _, s := range (Options{}).Scenarios() {
		if s.Relay {
			t.Errorf("%s without Options.Relay", s.Name)
		}
	}
}
