package perf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/tlsconn/pki"
)

// testCtx bounds a test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func echoConfig(async bool) node.Config {
	cfg := localConfig(async, time.Second)
	cfg.Timeout = time.Second
	return cfg
}

func inProcessPeers(o *Options) {
	o.EchoPeer = func(_ context.Context, spec PeerSpec) (*Peer, error) {
		cfg := echoConfig(spec.Async)
		if spec.TLS {
			cfg = withTLS(cfg, o.TLSChain)
		}
		return InProcessEcho(cfg, o.Style)
	}
	o.TCPPeer = func(context.Context) (*Peer, error) { return InProcessTCPEcho() }
}

// TestRunMeasuresEveryScenarioAgainstAnInProcessEcho runs the whole harness
// small; it asserts that everything was measured, not how fast.
func TestRunMeasuresEveryScenarioAgainstAnInProcessEcho(t *testing.T) {
	var progress strings.Builder
	o := Options{Sizes: []int{5, 1 << 10}, InFlight: []int{1, 4}, Runs: 2, RunTime: 30 * time.Millisecond,
		Warmup: 10 * time.Millisecond, Timeout: time.Second, Progress: &progress}
	inProcessPeers(&o)
	rep, err := Run(testCtx(t, 60*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Results), 1+2*2+2*2*2; got != want { // chan, a TCP baseline per in flight and size, the grid
		t.Fatalf("%d results, want %d", got, want)
	}
	if rep.Failed() != 0 {
		t.Fatalf("failures:\n%s", progress.String())
	}
	tcp := map[[2]int]float64{}
	for _, r := range rep.Results {
		if !r.OK() || len(r.Runs) != 2 || r.Passes <= 0 || r.Median <= 0 || r.Min > r.Median || r.Max < r.Median ||
			r.Spread != r.Max/r.Min {
			t.Errorf("%s: %+v", r.Name, r)
		}
		if r.Kind == KindTCP {
			tcp[[2]int{r.InFlight, r.Size}] = r.Median
		}
	}
	for _, r := range rep.Results {
		// Like with like: over the baseline of the same in flight and size.
		if want := r.Median / tcp[[2]int{r.InFlight, r.Size}]; r.Kind == KindChirp && r.VsTCP != want {
			t.Errorf("%s: %.3fx vs tcp, want %.3fx", r.Name, r.VsTCP, want)
		}
		if r.Kind != KindChirp && r.VsTCP != 0 {
			t.Errorf("baseline %s has a ratio to TCP", r.Name)
		}
	}
	if rep.Peers["sync"] == "" || rep.Peers["async"] == "" || rep.Peers["tcp"] == "" {
		t.Errorf("peers %v", rep.Peers)
	}
	if !strings.Contains(progress.String(), "[13/13] async pooled4 1KiB") {
		t.Errorf("progress lacks the last scenario:\n%s", progress.String())
	}
}

func TestTLSScenarios(t *testing.T) {
	names := func(o Options) (tls []string) {
		for _, s := range o.Scenarios() {
			if s.TLS {
				tls = append(tls, s.Name)
			}
		}
		return tls
	}
	for _, c := range []struct {
		o    Options
		want []string
	}{
		{Options{}, nil},
		{Options{TLS: true}, []string{"tls sync single 5B", "tls async pooled16 5B", "tls async pooled16 1KiB", "tls async pooled16 64KiB"}},
		{Options{TLS: true, Quick: true}, []string{"tls async pooled16 1KiB"}},
		{Options{TLS: true, Modes: []string{"sync"}}, []string{"tls sync single 5B"}},
		{Options{TLS: true, Quick: true, Modes: []string{"sync"}}, nil},
		{Options{TLS: true, Sizes: []int{5}, InFlight: []int{1, 4}, Modes: []string{"async"}}, []string{"tls async single 5B", "tls async pooled4 5B"}},
		{Options{OnlyTLS: true, Sizes: []int{5}, InFlight: []int{2}}, []string{"tls sync pooled2 5B", "tls async pooled2 5B"}},
	} {
		if got := names(c.o); !slices.Equal(got, c.want) {
			t.Errorf("%+v: TLS scenarios %q, want %q", c.o, got, c.want)
		}
	}
	only := Options{OnlyTLS: true}.Scenarios()
	for _, s := range only {
		if s.Kind == KindChirp && !s.TLS {
			t.Errorf("OnlyTLS lists %q", s.Name)
		}
	}
	if len(only) != len(Options{}.Scenarios()) {
		t.Errorf("OnlyTLS: %d scenarios, want the grid", len(only))
	}
}

func TestScenariosSpanTheGrid(t *testing.T) {
	def := Options{}.Scenarios()
	if len(def) != 1+3*3+2*3*3 { // chan, a TCP baseline per in flight and size, the grid
		t.Errorf("default: %d scenarios", len(def))
	}
	quick := Options{Quick: true}.Scenarios()
	if len(quick) >= len(def) {
		t.Errorf("quick (%d scenarios) is not smaller than default (%d)", len(quick), len(def))
	}
	names := map[string]bool{}
	for _, s := range def {
		if names[s.Name] {
			t.Errorf("duplicate scenario %q", s.Name)
		}
		names[s.Name] = true
	}
	for _, want := range []string{"sync single 5B", "async pooled64 64KiB", "sync pooled16 1KiB", "tcp single 5B",
		"tcp pooled16 5B", "tcp pooled64 5B", "tcp pooled16 64KiB", "chan round trip"} {
		if !names[want] {
			t.Errorf("no scenario %q", want)
		}
	}
	// Every chirp scenario, TLS ones too, has its own baseline, listed
	// before it.
	for _, o := range []Options{{}, {Quick: true, TLS: true}, {TLS: true, InFlight: []int{3}, Sizes: []int{7}}} {
		seen := map[[2]int]bool{}
		for _, s := range o.Scenarios() {
			switch s.Kind {
			case KindTCP:
				seen[[2]int{s.InFlight, s.Size}] = true
			case KindChirp:
				if !seen[[2]int{s.InFlight, s.Size}] {
					t.Errorf("%+v: %s has no TCP baseline before it", o, s.Name)
				}
			}
		}
	}
}

// closedPort is a loopback port nobody listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRunReportsFailuresInsteadOfNumbers: a peer that cannot be reached and
// a peer that never echoes fail their scenarios with the reason; no figure
// appears for them.
func TestRunReportsFailuresInsteadOfNumbers(t *testing.T) {
	sink, err := node.Start(echoConfig(true)) // nil handler: releases at once, echoes nothing
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close(context.Background()) })
	dead := closedPort(t)

	o := Options{Sizes: []int{5}, InFlight: []int{1}, Runs: 1, RunTime: 20 * time.Millisecond,
		Warmup: 10 * time.Millisecond, Timeout: 200 * time.Millisecond}
	o.TCPPeer = func(context.Context) (*Peer, error) { return ExternalPeer(dead, "nobody"), nil }
	o.EchoPeer = func(_ context.Context, spec PeerSpec) (*Peer, error) {
		if spec.Async {
			return ExternalPeer(fmt.Sprintf("127.0.0.1:%d", sink.Port()), "a sink"), nil
		}
		return ExternalPeer(dead, "nobody"), nil
	}
	rep, err := Run(testCtx(t, 30*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Result{}
	for _, r := range rep.Results {
		byName[r.Name] = r
	}
	for name, want := range map[string]error{
		"tcp single 5B":   nil, // connection refused
		"sync single 5B":  node.ErrCannotConnect,
		"async single 5B": ErrStalled,
	} {
		r := byName[name]
		if r.Error == "" || r.Median != 0 || len(r.Runs) != 0 {
			t.Errorf("%s: want a failure without figures, got %+v", name, r)
		}
		if want != nil && !strings.Contains(r.Error, want.Error()) {
			t.Errorf("%s: error %q does not say %q", name, r.Error, want)
		}
	}
	if !byName["chan round trip"].OK() {
		t.Errorf("the channel baseline failed: %+v", byName["chan round trip"])
	}
	if rep.Failed() != 3 {
		t.Errorf("Failed() = %d, want 3", rep.Failed())
	}
}

func TestRunSkipsAModeWithoutPeer(t *testing.T) {
	o := Options{Sizes: []int{5}, InFlight: []int{1}, Runs: 1, RunTime: 20 * time.Millisecond, Warmup: 10 * time.Millisecond}
	o.EchoPeer = func(_ context.Context, spec PeerSpec) (*Peer, error) {
		if spec.Async {
			return nil, fmt.Errorf("%w: the target is sync", ErrNoPeer)
		}
		return InProcessEcho(echoConfig(false), "")
	}
	rep, err := Run(testCtx(t, 30*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		switch {
		case r.Kind == KindTCP:
			if r.Skipped == "" {
				t.Errorf("tcp without peer: %+v", r)
			}
		case r.Async:
			if r.Skipped == "" || r.Error != "" {
				t.Errorf("%s: want skipped, got %+v", r.Name, r)
			}
		case !r.OK():
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	if rep.Failed() != 0 {
		t.Errorf("skips counted as failures")
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{Modes: []string{"fast"}}, {InFlight: []int{0}}, {Sizes: []int{-1}}} {
		if _, err := Run(context.Background(), o); !errors.Is(err, node.ErrValue) {
			t.Errorf("Run(%+v) = %v, want ErrValue", o, err)
		}
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Sizes: []int{5}, InFlight: []int{1}, Runs: 1000, RunTime: 50 * time.Millisecond}
	inProcessPeers(&o)
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	rep, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("Run = %v, %v; want the report so far and context.Canceled", rep, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v after cancel", d)
	}
}

func TestClientRunCountsPassesAndFailures(t *testing.T) {
	for _, style := range []Style{StyleInline, StyleWorkers} {
		for _, async := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/async=%v", style, async), func(t *testing.T) {
				peer, err := InProcessEcho(echoConfig(async), style)
				if err != nil {
					t.Fatal(err)
				}
				defer peer.Close()
				c, err := NewClient(echoConfig(async), style)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close(context.Background())
				if c.Style() != style {
					t.Errorf("client style %q, want %q", c.Style(), style)
				}
				ctx := testCtx(t, 20*time.Second)
				out, err := c.Run(ctx, Load{Addr: peer.Addr, InFlight: 8, Header: []byte("h"), Data: []byte("hello"), Count: 100, WaitEcho: true, StopOnError: true})
				if err != nil || out.Passes != 100 || out.Failed != 0 || out.Rate() <= 0 {
					t.Fatalf("Run = %+v, %v; want 100 passes", out, err)
				}
				// Without waiting for echoes, the echoes arrive as strays.
				out, err = c.Run(ctx, Load{Addr: peer.Addr, Data: []byte("x"), Count: 10})
				if err != nil || out.Passes != 10 {
					t.Fatalf("Run without echo = %+v, %v", out, err)
				}
				// Every send fails against a closed port; the run goes on.
				out, err = c.Run(ctx, Load{Addr: closedPort(t), InFlight: 2, Data: []byte("x"), Count: 3, Stall: 5 * time.Second})
				if err != nil || out.Failed != 3 || out.Passes != 0 || !errors.Is(out.FirstErr, node.ErrCannotConnect) {
					t.Fatalf("Run to a closed port = %+v, %v; want 3 failures", out, err)
				}
			})
		}
	}
}

// TestClientRunReportsBadEchoes: a peer that answers with other data fails
// the pass (inline: the failure is found on the loop and still counted).
func TestClientRunReportsBadEchoes(t *testing.T) {
	for _, style := range []Style{StyleInline, StyleWorkers} {
		cfg := echoConfig(true)
		cfg.Receive = node.ReceiveQueue
		liar, err := node.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				m, err := liar.Recv(context.Background())
				if err != nil {
					return
				}
				m.Data = []byte("not what you sent")
				_ = liar.Send(context.Background(), m)
			}
		}()
		c, err := NewClient(echoConfig(true), style)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Run(testCtx(t, 20*time.Second), Load{Addr: fmt.Sprintf("127.0.0.1:%d", liar.Port()), InFlight: 4,
			Data: []byte("hello"), Count: 20, WaitEcho: true})
		if err != nil || out.Failed != 20 || out.Passes != 0 || !errors.Is(out.FirstErr, ErrBadEcho) {
			t.Errorf("%s: Run against a liar = %+v, %v; want 20 failures with ErrBadEcho", style, out, err)
		}
		c.Close(context.Background())
		liar.Close(context.Background())
	}
}

func TestStylesAreChecked(t *testing.T) {
	if _, err := NewClient(echoConfig(true), "fast"); !errors.Is(err, node.ErrValue) {
		t.Errorf("NewClient with style fast: %v", err)
	}
	if _, err := StartEcho(echoConfig(true), "fast", nil); !errors.Is(err, node.ErrValue) {
		t.Errorf("StartEcho with style fast: %v", err)
	}
	if _, err := Run(context.Background(), Options{Style: "fast"}); !errors.Is(err, node.ErrValue) {
		t.Errorf("Run with style fast: %v", err)
	}
	if _, err := Run(context.Background(), Options{TLS: true}); !errors.Is(err, node.ErrValue) {
		t.Errorf("Run with TLS and no credentials: %v", err)
	}
}

// tlsChains writes a CA and two node credential files (libchirp's combined
// PEM) to a temporary directory.
func tlsChains(t *testing.T) (a, b string) {
	t.Helper()
	ca, err := pki.NewCA("perf test CA", pki.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files [2]string
	for i := range files {
		id, err := ca.Issue(fmt.Sprintf("perf test node %d", i+1), pki.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		pem, err := ca.ChainPEM(id)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = filepath.Join(dir, fmt.Sprintf("node%d.pem", i+1))
		if err := os.WriteFile(files[i], pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files[0], files[1]
}

// TestRunMeasuresTLSScenarios runs plaintext and TLS scenarios of both
// styles and checks that every TLS row is compared with its plaintext one.
func TestRunMeasuresTLSScenarios(t *testing.T) {
	echoChain, localChain := tlsChains(t)
	for _, style := range []Style{StyleInline, StyleWorkers} {
		var progress strings.Builder
		o := Options{Quick: true, Runs: 1, RunTime: 30 * time.Millisecond,
			Warmup: 10 * time.Millisecond, Timeout: time.Second, Progress: &progress, Style: style, TLS: true, TLSChain: localChain}
		var specs []PeerSpec
		o.EchoPeer = func(_ context.Context, spec PeerSpec) (*Peer, error) {
			specs = append(specs, spec)
			cfg := echoConfig(spec.Async)
			if spec.TLS {
				cfg = withTLS(cfg, echoChain)
			}
			return InProcessEcho(cfg, style)
		}
		rep, err := Run(testCtx(t, 60*time.Second), o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed() != 0 || rep.Style != style {
			t.Fatalf("%s: %d failures, style %q:\n%s", style, rep.Failed(), rep.Style, progress.String())
		}
		var tls []Result
		for _, r := range rep.Results {
			if r.TLS {
				tls = append(tls, r)
			}
		}
		if len(tls) != 1 || tls[0].Name != "tls async pooled16 1KiB" || tls[0].VsPlain <= 0 || !tls[0].OK() {
			t.Errorf("%s: TLS results %+v", style, tls)
		}
		if want := []PeerSpec{{}, {Async: true}, {Async: true, TLS: true}}; !slices.Equal(specs, want) {
			t.Errorf("%s: peers asked for %v, want %v", style, specs, want)
		}
		if rep.Peers["tls async"] == "" {
			t.Errorf("%s: peers %v", style, rep.Peers)
		}
		var table strings.Builder
		if err := WriteTable(&table, rep); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(table.String(), "vs plain") || !strings.Contains(table.String(), string(style)) {
			t.Errorf("%s: table:\n%s", style, table.String())
		}
	}
}

// TestTLSScenarioFailsAgainstAPlaintextPeer: a TLS scenario never measures
// plaintext unnoticed.
func TestTLSScenarioFailsAgainstAPlaintextPeer(t *testing.T) {
	_, localChain := tlsChains(t)
	o := Options{Modes: []string{"async"}, Sizes: []int{5}, InFlight: []int{1}, Runs: 1, RunTime: 20 * time.Millisecond,
		Warmup: 10 * time.Millisecond, Timeout: 300 * time.Millisecond, OnlyTLS: true, TLSChain: localChain}
	o.EchoPeer = func(_ context.Context, spec PeerSpec) (*Peer, error) {
		return InProcessEcho(echoConfig(spec.Async), "") // plaintext
	}
	rep, err := Run(testCtx(t, 30*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 3 || rep.Results[2].Name != "tls async single 5B" || rep.Results[2].Error == "" {
		t.Fatalf("results %+v", rep.Results)
	}
	t.Logf("TLS scenario against a plaintext peer: %s", rep.Results[2].Error)
}

func TestClientRunRejectsBadLoads(t *testing.T) {
	c, err := NewClient(echoConfig(true), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, ld := range []Load{{Addr: "nowhere", Count: 1}, {Addr: "127.0.0.1:9"}, {Addr: "127.0.0.1:9", Count: 1, InFlight: -1}} {
		if _, err := c.Run(context.Background(), ld); !errors.Is(err, node.ErrValue) {
			t.Errorf("Run(%+v) = %v, want ErrValue", ld, err)
		}
	}
}

// TestStartProcessParsesThePortAndKillsTheChild runs this test binary as a
// TCP echo child.
func TestStartProcessParsesThePortAndKillsTheChild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PERF_TEST_CHILD", "tcp-echo")
	p, err := StartProcess(testCtx(t, 30*time.Second), "127.0.0.1", nil, exe)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	pp, err := dialTCPPingPong(context.Background(), p.Addr, 5, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pp.run(context.Background(), 0, 10)
	pp.Close()
	if err != nil || out.Passes != 10 {
		t.Fatalf("ping-pong with the child: %+v, %v", out, err)
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > termGrace+2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if _, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		t.Errorf("the child still listens after Close")
	}
}

func TestStartProcessReportsAChildThatFails(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PERF_TEST_CHILD", "fail")
	_, err = StartProcess(testCtx(t, 30*time.Second), "127.0.0.1", nil, exe)
	if err == nil || !strings.Contains(err.Error(), "cannot listen: the reason") {
		t.Fatalf("StartProcess = %v; want the child's stderr in the error", err)
	}
	if _, err := StartProcess(context.Background(), "127.0.0.1", nil, "/nonexistent/chirp"); !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("StartProcess of a missing program = %v", err)
	}
}
