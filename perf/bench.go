package perf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/gochirp/chirp/node"
)

// Scenario kinds.
const (
	KindChirp = "chirp" // passes through chirp nodes
	KindTCP   = "tcp"   // raw TCP echoes with another process, as many in flight and as big as a chirp scenario
	KindChan  = "chan"  // channel round trip between two goroutines
)

// Scenario is one thing measured.
type Scenario struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Async bool   `json:"async"`         // both nodes asynchronous (chirp)
	TLS   bool   `json:"tls,omitempty"` // both nodes encrypt, loopback too (chirp)
	// Relay: the passes go through a relay (a node.Router of the same mode)
	// in front of the echo peer, there and back (chirp).
	Relay    bool `json:"relay,omitempty"`
	InFlight int  `json:"in_flight"` // messages in flight: 1 single, more pooled
	Size     int  `json:"size"`      // payload bytes
}

// Peer is the echo peer the scenario needs (chirp scenarios).
func (s Scenario) Peer() PeerSpec { return PeerSpec{Async: s.Async, TLS: s.TLS} }

// PeerSpec says which echo peer a chirp scenario needs.
type PeerSpec struct {
	Async bool // asynchronous mode
	TLS   bool // TLS, loopback included (node.Config.AlwaysEncrypt)
}

// String is "sync", "async", "tls sync" or "tls async".
func (p PeerSpec) String() string {
	mode := "sync"
	if p.Async {
		mode = "async"
	}
	if p.TLS {
		return "tls " + mode
	}
	return mode
}

// Mode is "sync" or "async" for chirp scenarios, "" for baselines.
func (s Scenario) Mode() string {
	switch {
	case s.Kind != KindChirp:
		return ""
	case s.Async:
		return "async"
	}
	return "sync"
}

// Result is the measurement of one scenario.
type Result struct {
	Scenario
	// Runs are the passes/s of the timed runs; Summary is their median,
	// minimum, maximum and spread.
	Runs []float64 `json:"runs"`
	Summary
	// Passes is the number of passes counted in the timed runs.
	Passes int64 `json:"passes"`
	// VsTCP, for a chirp scenario, is Median divided by the median of the
	// raw-TCP baseline with the same messages in flight and payload size,
	// measured in the same run (0 when there is none).
	VsTCP float64 `json:"vs_tcp,omitempty"`
	// VsDirect, for a relay scenario, is Median divided by the median of
	// the same scenario without the relay, measured in the same run (0 when
	// that was not measured): what the hop leaves of the throughput.
	VsDirect float64 `json:"vs_direct,omitempty"`
	// VsPlain, for a TLS scenario, is Median divided by the median of the
	// same scenario in plaintext (0 when that was not measured): what TLS
	// leaves of the throughput.
	VsPlain float64 `json:"vs_plain,omitempty"`
	// Error is why the scenario failed; Skipped why it did not run.
	Error   string `json:"error,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// OK reports whether the scenario was measured.
func (r Result) OK() bool { return r.Error == "" && r.Skipped == "" }

// Report is the outcome of Run.
type Report struct {
	Started   time.Time     `json:"started"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	GoVersion string        `json:"go_version"`
	OS        string        `json:"os"`
	Arch      string        `json:"arch"`
	CPUs      int           `json:"cpus"`
	Quick     bool          `json:"quick"`
	Runs      int           `json:"runs"`
	RunTime   time.Duration `json:"run_time_ns"`
	Warmup    time.Duration `json:"warmup_ns"`
	// Style is how the local node (and the echo peers the harness
	// started) handled received messages.
	Style Style `json:"style"`
	// BusyPoll is Options.BusyPoll: how long the nodes' loops polled
	// before they slept.
	BusyPoll time.Duration `json:"busy_poll_ns,omitempty"`
	// Placement is Options.Placement: where the processes ran.
	Placement string `json:"placement"`
	// Peers says what each echo peer was ("sync", "async", "tls sync",
	// "tls async", "tcp").
	Peers   map[string]string `json:"peers"`
	Results []Result          `json:"results"`
}

// Failed counts the scenarios that failed.
func (r *Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if res.Error != "" {
			n++
		}
	}
	return n
}

// ErrNoPeer, returned by Options.EchoPeer, skips the scenarios of that mode
// instead of failing them (the given target serves the other mode).
var ErrNoPeer = errors.New("perf: no echo peer for this mode")

// Options says what Run measures and against which peers.
type Options struct {
	// Quick selects a short run for smoke tests: fewer scenarios, runs and
	// shorter runs. The fields below, when set, override either preset.
	Quick bool
	// Sizes, InFlight and Modes ("sync", "async") span the chirp scenarios.
	Sizes    []int
	InFlight []int
	Modes    []string
	// Runs timed runs of RunTime each, after a Warmup, per scenario.
	Runs    int
	RunTime time.Duration
	Warmup  time.Duration
	// Timeout of the local node's sends (0: node.DefaultTimeout). A run
	// fails when no pass ended for twice as long.
	Timeout time.Duration
	// Style is how the local node handles received messages (see Style;
	// "" is StyleInline). EchoPeer should start echo nodes of the same
	// style, so both ends compare with libchirp's alike.
	Style Style
	// TLS adds scenarios over TLS, both nodes encrypting loopback too (as
	// libchirp's always-encrypt), each compared with the same scenario in
	// plaintext: tls sync single 5B and tls async pooled16 5B, 1KiB and
	// 64KiB (Quick: tls async pooled16 1KiB), of the modes in Modes; when
	// Sizes or InFlight are set, the whole grid over TLS instead.
	TLS bool
	// OnlyTLS runs the whole grid (Modes, InFlight, Sizes) over TLS and
	// nothing in plaintext: for a given peer that speaks TLS only.
	OnlyTLS bool
	// TLSChain is the local node's credentials for the TLS scenarios
	// (node.Config.CertChainPEM); required with TLS or OnlyTLS.
	TLSChain string
	// Relay adds scenarios through a relay in front of the echo peer, each
	// compared with the same scenario direct: relay sync single 5B and
	// relay async pooled16 5B, of the modes in Modes (plaintext only; none
	// with OnlyTLS). RelayPeer starts the relays.
	Relay bool
	// RelayPeer returns a relay of spec's mode that forwards to the echo
	// peer at target; Run closes it. Nil skips the relay scenarios.
	RelayPeer func(ctx context.Context, spec PeerSpec, target string) (*Peer, error)
	// EchoPeer returns the chirp echo peer for a mode and transport,
	// started or given. It is called once per PeerSpec; Run closes what it
	// returns. ErrNoPeer skips the scenarios of that peer. Nil skips all
	// chirp scenarios.
	EchoPeer func(ctx context.Context, spec PeerSpec) (*Peer, error)
	// TCPPeer returns the raw TCP echo peer of the baseline. Nil skips the
	// baseline.
	TCPPeer func(ctx context.Context) (*Peer, error)
	// BusyPoll is the local node's node.Config.BusyPoll; EchoPeer and
	// RelayPeer should start their peers with the same.
	BusyPoll time.Duration
	// Placement is where this process and the peers it started run, for
	// the report (nil: free). Place pins them; EchoPeer, RelayPeer and
	// TCPPeer should start their peers with its StartProcess.
	Placement *Placement
	// Progress receives a line per scenario while Run works (nil: none).
	Progress io.Writer

	defaulted  bool // withDefaults ran
	customGrid bool // Sizes or InFlight were given
}

// Presets.
var (
	defaultSizes    = []int{5, 1 << 10, 64 << 10}
	defaultInFlight = []int{1, 16, 64}
	defaultModes    = []string{"sync", "async"}
	quickSizes      = []int{5, 1 << 10}
	quickInFlight   = []int{1, 16}
	defaultTLS      = []Scenario{
		{Kind: KindChirp, TLS: true, InFlight: 1, Size: 5},
		{Kind: KindChirp, TLS: true, Async: true, InFlight: 16, Size: 5},
		{Kind: KindChirp, TLS: true, Async: true, InFlight: 16, Size: 1 << 10},
		{Kind: KindChirp, TLS: true, Async: true, InFlight: 16, Size: 64 << 10},
	}
	quickTLS = []Scenario{{Kind: KindChirp, TLS: true, Async: true, InFlight: 16, Size: 1 << 10}}
	relays   = []Scenario{
		{Kind: KindChirp, Relay: true, InFlight: 1, Size: 5},
		{Kind: KindChirp, Relay: true, Async: true, InFlight: 16, Size: 5},
	}
)

func (o Options) withDefaults() Options {
	if o.defaulted {
		return o
	}
	o.defaulted = true
	o.customGrid = o.Sizes != nil || o.InFlight != nil
	if o.Sizes == nil {
		o.Sizes = defaultSizes
		if o.Quick {
			o.Sizes = quickSizes
		}
	}
	if o.InFlight == nil {
		o.InFlight = defaultInFlight
		if o.Quick {
			o.InFlight = quickInFlight
		}
	}
	if o.Modes == nil {
		o.Modes = defaultModes
	}
	if o.Style == "" {
		o.Style = StyleInline
	}
	if o.Runs <= 0 {
		o.Runs = 5
		if o.Quick {
			o.Runs = 3
		}
	}
	if o.RunTime <= 0 {
		o.RunTime = 400 * time.Millisecond
		if o.Quick {
			o.RunTime = 150 * time.Millisecond
		}
	}
	if o.Warmup <= 0 {
		o.Warmup = 200 * time.Millisecond
		if o.Quick {
			o.Warmup = 100 * time.Millisecond
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = node.DefaultTimeout
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Scenarios lists what Run would measure with o, baselines first: the
// channel round trip, then a raw-TCP baseline for every pair of messages in
// flight and payload size that a chirp scenario has.
func (o Options) Scenarios() []Scenario {
	o = o.withDefaults()
	list := []Scenario{{Name: "chan round trip", Kind: KindChan, InFlight: 1}}
	var grid []Scenario
	for _, mode := range o.Modes {
		for _, inflight := range o.InFlight {
			for _, size := range o.Sizes {
				grid = append(grid, Scenario{Kind: KindChirp, Async: mode == "async", InFlight: inflight, Size: size})
			}
		}
	}
	var chirp []Scenario
	switch {
	case o.OnlyTLS:
		for _, s := range grid {
			s.TLS = true
			chirp = append(chirp, s)
		}
	case o.TLS && o.customGrid:
		chirp = grid
		for _, s := range grid {
			s.TLS = true
			chirp = append(chirp, s)
		}
	case o.TLS:
		tls := defaultTLS
		if o.Quick {
			tls = quickTLS
		}
		chirp = grid
		for _, mode := range o.Modes {
			for _, s := range tls {
				if s.Mode() == mode {
					chirp = append(chirp, s)
				}
			}
		}
	default:
		chirp = grid
	}
	if o.Relay && !o.OnlyTLS {
		for _, mode := range o.Modes {
			for _, s := range relays {
				if s.Mode() == mode {
					chirp = append(chirp, s)
				}
			}
		}
	}
	var tcp []Scenario
	for _, s := range chirp {
		t := Scenario{Kind: KindTCP, InFlight: s.InFlight, Size: s.Size}
		t.Name = fmt.Sprintf("tcp %s %s", inflightName(t.InFlight), SizeName(t.Size))
		if !slices.Contains(tcp, t) {
			tcp = append(tcp, t)
		}
	}
	slices.SortStableFunc(tcp, func(a, b Scenario) int { return cmp.Or(a.InFlight-b.InFlight, a.Size-b.Size) })
	list = append(list, tcp...)
	for _, s := range chirp {
		s.Name = fmt.Sprintf("%s %s %s", s.Peer(), inflightName(s.InFlight), SizeName(s.Size))
		if s.Relay {
			s.Name = "relay " + s.Name
		}
		list = append(list, s)
	}
	return list
}

func inflightName(n int) string {
	if n == 1 {
		return "single"
	}
	return fmt.Sprintf("pooled%d", n)
}

// SizeName writes a byte count the short way: 5B, 1KiB, 64KiB, 1.5MiB.
func SizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// Run measures the scenarios of o and returns the report. Scenario failures
// are in the report (Result.Error); the error is non-nil only when o is
// unusable or ctx ended.
func Run(ctx context.Context, o Options) (*Report, error) {
	o = o.withDefaults()
	for _, m := range o.Modes {
		if m != "sync" && m != "async" {
			return nil, fmt.Errorf("%w: mode %q (want sync or async)", node.ErrValue, m)
		}
	}
	for _, n := range o.InFlight {
		if n < 1 {
			return nil, fmt.Errorf("%w: %d in flight", node.ErrValue, n)
		}
	}
	for _, n := range o.Sizes {
		if n < 0 || n > int(node.DefaultMaxMessageSize) {
			return nil, fmt.Errorf("%w: payload size %d", node.ErrValue, n)
		}
	}
	if _, err := o.Style.check(); err != nil {
		return nil, err
	}
	if (o.TLS || o.OnlyTLS) && o.TLSChain == "" {
		return nil, fmt.Errorf("%w: TLS scenarios need the local node's credentials (Options.TLSChain)", node.ErrValue)
	}
	rep := &Report{
		Started: time.Now(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), Quick: o.Quick, Runs: o.Runs, RunTime: o.RunTime, Warmup: o.Warmup,
		Style: o.Style, BusyPoll: o.BusyPoll, Placement: o.Placement.String(), Peers: map[string]string{},
	}
	b := &bench{ctx: ctx, o: o, rep: rep, total: len(o.Scenarios())}
	fmt.Fprintf(o.Progress, "chirp bench: %d scenarios, each %d runs of %v after a %v warm-up\n",
		b.total, o.Runs, o.RunTime, o.Warmup)
	err := b.run(ctx)
	rep.Elapsed = time.Since(rep.Started)
	rep.compare()
	return rep, err
}

// compare fills in the ratios: each chirp scenario over the raw-TCP
// baseline with the same messages in flight and size, each TLS scenario
// over its plaintext twin.
func (rep *Report) compare() {
	type key struct {
		async          bool
		inflight, size int
	}
	tcp := map[[2]int]float64{}
	plain := map[key]float64{}
	for _, r := range rep.Results {
		switch {
		case !r.OK():
		case r.Kind == KindTCP:
			tcp[[2]int{r.InFlight, r.Size}] = r.Median
		case r.Kind == KindChirp && !r.TLS && !r.Relay:
			plain[key{r.Async, r.InFlight, r.Size}] = r.Median
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		if !r.OK() || r.Kind != KindChirp {
			continue
		}
		if t := tcp[[2]int{r.InFlight, r.Size}]; t > 0 {
			r.VsTCP = r.Median / t
		}
		if p := plain[key{r.Async, r.InFlight, r.Size}]; r.TLS && p > 0 {
			r.VsPlain = r.Median / p
		}
		if p := plain[key{r.Async, r.InFlight, r.Size}]; r.Relay && p > 0 {
			r.VsDirect = r.Median / p
		}
	}
}

// bench is the state of one Run.
type bench struct {
	ctx   context.Context
	o     Options
	rep   *Report
	total int
	done  int
}

// runner does passes for a duration (or a count) and says what happened.
type runner func(ctx context.Context, d time.Duration) (Outcome, error)

func (b *bench) run(ctx context.Context) error {
	all := b.o.Scenarios()
	stall := 2 * b.o.Timeout

	// Baselines first: every chirp figure is compared with the TCP one.
	ch := newChanPingPong()
	b.measure(ctx, all[0], func(ctx context.Context, d time.Duration) (Outcome, error) { return ch.run(ctx, d, 0) })
	ch.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	k := 1
	for k < len(all) && all[k].Kind == KindTCP {
		k++
	}
	tcpList, chirp := all[1:k], all[k:]
	b.measureTCP(ctx, tcpList, stall)
	if err := ctx.Err(); err != nil {
		return err
	}

	// One echo peer per mode and transport, in the order of the list.
	for len(chirp) > 0 {
		spec := chirp[0].Peer()
		var these, rest []Scenario
		for _, s := range chirp {
			if s.Peer() == spec {
				these = append(these, s)
			} else {
				rest = append(rest, s)
			}
		}
		if err := b.measurePeer(ctx, spec, these, stall); err != nil {
			return err
		}
		chirp = rest
	}
	return nil
}

func (b *bench) measureTCP(ctx context.Context, list []Scenario, stall time.Duration) {
	if b.o.TCPPeer == nil {
		for _, s := range list {
			b.skip(s, "no TCP echo peer")
		}
		return
	}
	fmt.Fprintf(b.o.Progress, "starting the raw TCP echo peer\n")
	peer, err := b.o.TCPPeer(ctx)
	if err != nil {
		for _, s := range list {
			b.fail(s, fmt.Errorf("starting the TCP echo peer: %w", err))
		}
		return
	}
	defer peer.Close()
	b.rep.Peers[KindTCP] = peer.Desc + " at " + peer.Addr
	for _, s := range list {
		if s.InFlight == 1 {
			pp, err := dialTCPPingPong(ctx, peer.Addr, s.Size, stall)
			if err != nil {
				b.fail(s, err)
				continue
			}
			b.measure(ctx, s, func(ctx context.Context, d time.Duration) (Outcome, error) { return pp.run(ctx, d, 0) })
			pp.Close()
			continue
		}
		st, err := dialTCPStream(ctx, peer.Addr, s.Size, s.InFlight, stall)
		if err != nil {
			b.fail(s, err)
			continue
		}
		b.measure(ctx, s, func(ctx context.Context, d time.Duration) (Outcome, error) { return st.run(ctx, d, 0) })
		st.Close()
	}
}

// measurePeer measures the chirp scenarios of one echo peer (mode and
// transport): one echo peer and one local node of that kind, the node
// restarted after a failure.
func (b *bench) measurePeer(ctx context.Context, spec PeerSpec, list []Scenario, stall time.Duration) error {
	if len(list) == 0 {
		return nil
	}
	mode := spec.String()
	if b.o.EchoPeer == nil {
		for _, s := range list {
			b.skip(s, "no echo peer")
		}
		return nil
	}
	fmt.Fprintf(b.o.Progress, "starting the %s echo peer\n", mode)
	peer, err := b.o.EchoPeer(ctx, spec)
	if err != nil {
		for _, s := range list {
			if errors.Is(err, ErrNoPeer) {
				b.skip(s, err.Error())
			} else {
				b.fail(s, fmt.Errorf("starting the %s echo peer: %w", mode, err))
			}
		}
		return ctx.Err()
	}
	defer peer.Close()
	b.rep.Peers[mode] = peer.Desc + " at " + peer.Addr

	var client *Client
	closeClient := func() {
		if client != nil {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = client.Close(cctx)
			cancel()
			client = nil
		}
	}
	defer closeClient()
	var relay *Peer
	defer func() {
		if relay != nil {
			relay.Close()
		}
	}()
	for _, s := range list {
		addr := peer.Addr
		if s.Relay {
			if b.o.RelayPeer == nil {
				b.skip(s, "no relay")
				continue
			}
			if relay == nil {
				fmt.Fprintf(b.o.Progress, "starting the %s relay\n", mode)
				if relay, err = b.o.RelayPeer(ctx, spec, peer.Addr); err != nil {
					relay = nil
					b.fail(s, fmt.Errorf("starting the %s relay: %w", mode, err))
					if err := ctx.Err(); err != nil {
						return err
					}
					continue
				}
				b.rep.Peers["relay "+mode] = relay.Desc + " at " + relay.Addr
			}
			addr = relay.Addr
		}
		if client == nil {
			cfg := localConfig(spec.Async, b.o.Timeout)
			cfg.BusyPoll = b.o.BusyPoll
			if spec.TLS {
				cfg = withTLS(cfg, b.o.TLSChain)
			}
			client, err = NewClient(cfg, b.o.Style)
			if err != nil {
				b.fail(s, fmt.Errorf("starting the local node: %w", err))
				continue
			}
		}
		ld := Load{Addr: addr, InFlight: s.InFlight, Data: payload(s.Size), WaitEcho: true, StopOnError: true, Stall: stall}
		res := b.measure(ctx, s, func(ctx context.Context, d time.Duration) (Outcome, error) {
			ld.Duration = d
			return client.Run(ctx, ld)
		})
		if err := ctx.Err(); err != nil {
			return err
		}
		if res.Error != "" {
			closeClient() // a stuck send must not spoil the next scenario
		}
	}
	return nil
}

// localConfig is the configuration of the harness's local node: loopback
// only, plaintext.
func localConfig(async bool, timeout time.Duration) node.Config {
	return node.Config{
		Port:              node.AnyPort,
		BindV4:            netip.AddrFrom4([4]byte{127, 0, 0, 1}),
		DisableV6:         true,
		Asynchronous:      async,
		Timeout:           timeout,
		DisableEncryption: true,
	}
}

// withTLS turns encryption on in cfg with the credentials in chain, for
// loopback peers too (as libchirp's always-encrypt): a TLS scenario never
// runs in plaintext unnoticed, a peer that does not encrypt fails it.
func withTLS(cfg node.Config, chain string) node.Config {
	cfg.DisableEncryption = false
	cfg.AlwaysEncrypt = true
	cfg.CertChainPEM = chain
	return cfg
}

// measure runs the warm-up and the timed runs of s and records the result.
func (b *bench) measure(ctx context.Context, s Scenario, run runner) Result {
	b.done++
	fmt.Fprintf(b.o.Progress, "[%2d/%d] %-24s warm-up", b.done, b.total, s.Name)
	res := Result{Scenario: s}
	if _, err := run(ctx, b.o.Warmup); err != nil {
		return b.record(res, fmt.Errorf("warm-up: %w", err))
	}
	fmt.Fprintf(b.o.Progress, ", runs")
	for i := 0; i < b.o.Runs; i++ {
		out, err := run(ctx, b.o.RunTime)
		if err != nil {
			return b.record(res, fmt.Errorf("run %d: %w", i+1, err))
		}
		if out.Passes == 0 {
			return b.record(res, fmt.Errorf("run %d: no pass ended within %v", i+1, b.o.RunTime))
		}
		res.Runs = append(res.Runs, out.Rate())
		res.Passes += out.Passes
		fmt.Fprintf(b.o.Progress, " %s", FormatRate(out.Rate()))
	}
	res.Summary = Summarize(res.Runs)
	return b.record(res, nil)
}

func (b *bench) record(res Result, err error) Result {
	switch {
	case err != nil && b.ctx.Err() != nil: // the user stopped the run, the scenario did not fail
		res.Runs, res.Passes = nil, 0
		res.Skipped = "interrupted"
		fmt.Fprintf(b.o.Progress, ": interrupted\n")
	case err != nil:
		res.Runs, res.Passes = nil, 0
		res.Error = err.Error()
		fmt.Fprintf(b.o.Progress, ": FAILED: %v\n", err)
	default:
		fmt.Fprintf(b.o.Progress, " -> median %s passes/s\n", FormatRate(res.Median))
	}
	b.rep.Results = append(b.rep.Results, res)
	return res
}

func (b *bench) fail(s Scenario, err error) {
	if b.ctx.Err() != nil {
		b.skip(s, "interrupted")
		return
	}
	b.done++
	fmt.Fprintf(b.o.Progress, "[%2d/%d] %-24s FAILED: %v\n", b.done, b.total, s.Name, err)
	b.rep.Results = append(b.rep.Results, Result{Scenario: s, Error: err.Error()})
}

func (b *bench) skip(s Scenario, why string) {
	b.done++
	fmt.Fprintf(b.o.Progress, "[%2d/%d] %-24s skipped: %s\n", b.done, b.total, s.Name, why)
	b.rep.Results = append(b.rep.Results, Result{Scenario: s, Skipped: why})
}

// FormatRate writes a rate short: 950, 25.5k, 1.23M.
func FormatRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
