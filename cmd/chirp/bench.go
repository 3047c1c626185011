package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "bench",
		args:    "[flags]",
		summary: "measure passes/s (message to an echo node and back) against raw TCP; table, JSON, SVG chart",
		setup:   setupBench,
	})
	register(&command{
		name:    "bench-peer",
		args:    "-tcp-echo [-bind ADDR] [-port N]",
		summary: "(internal) the raw TCP echo process of bench's baseline",
		setup:   setupBenchPeer,
	})
}

// benchOptions are the knobs of bench.
type benchOptions struct {
	quick      bool
	jsonFile   string
	chartFile  string
	linear     bool
	target     string
	targetMode string
	modes      string
	sizes      string
	inflight   string
	runs       int
	runTime    time.Duration
	warmup     time.Duration
	timeout    time.Duration
	tlsChain   string
}

func setupBench(fs *flag.FlagSet) func(stdio, []string) error {
	var o benchOptions
	fs.BoolVar(&o.quick, "quick", false, "short run for smoke tests (within 20 s): fewer scenarios, fewer and shorter runs")
	fs.StringVar(&o.jsonFile, "json", "", "also write the report as JSON to `FILE`")
	fs.StringVar(&o.chartFile, "chart", "", "also draw passes/s per scenario as an SVG bar chart to `FILE.svg`")
	fs.BoolVar(&o.linear, "linear", false, "linear chart axis (default: logarithmic)")
	fs.StringVar(&o.target, "target", "", "measure against the echo peer at `HOST:PORT` instead of starting one (e.g. a C or Python echo)")
	fs.StringVar(&o.targetMode, "target-mode", "sync", "mode of the -target peer, sync or async: only that mode is measured")
	fs.StringVar(&o.modes, "modes", "", "comma-separated modes to measure (default sync,async)")
	fs.StringVar(&o.sizes, "sizes", "", "comma-separated payload sizes in bytes (default 5,1024,65536; quick 5,1024)")
	fs.StringVar(&o.inflight, "inflight", "", "comma-separated messages in flight (default 1,16,64; quick 1,16)")
	fs.IntVar(&o.runs, "runs", 0, "timed runs per scenario (default 5; quick 3)")
	fs.DurationVar(&o.runTime, "run-time", 0, "length of a timed run (default 400ms; quick 150ms)")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up before the runs of a scenario (default 200ms; quick 100ms)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "send timeout of the nodes; a run fails when no pass ends for twice as long")
	fs.StringVar(&o.tlsChain, "tls-chain", "", "PEM `FILE` to also measure TLS (not supported yet)")
	return func(s stdio, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		}
		ctx, stop := untilSignal()
		defer stop()
		return runBench(ctx, s, o)
	}
}

// runBench measures, prints the table on stdout and writes the files. It
// fails when a scenario failed, so a smoke test notices.
func runBench(ctx context.Context, s stdio, o benchOptions) error {
	if o.tlsChain != "" {
		return errNoTLS
	}
	po := perf.Options{Quick: o.quick, Runs: o.runs, RunTime: o.runTime, Warmup: o.warmup, Timeout: o.timeout, Progress: s.err}
	var err error
	if po.Sizes, err = intList("-sizes", o.sizes); err != nil {
		return err
	}
	if po.InFlight, err = intList("-inflight", o.inflight); err != nil {
		return err
	}
	if o.modes != "" {
		po.Modes = strings.Split(o.modes, ",")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to run its echo peers: %w", err)
	}
	timeout := o.timeout.String()
	switch {
	case o.target != "":
		if o.targetMode != "sync" && o.targetMode != "async" {
			return usageError{fmt.Sprintf("-target-mode %q: want sync or async", o.targetMode)}
		}
		if _, _, err := net.SplitHostPort(o.target); err != nil {
			return usageError{fmt.Sprintf("-target: %v", err)}
		}
		po.EchoPeer = func(_ context.Context, async bool) (*perf.Peer, error) {
			if async != (o.targetMode == "async") {
				return nil, fmt.Errorf("%w: the -target peer is %s", perf.ErrNoPeer, o.targetMode)
			}
			return perf.ExternalPeer(o.target, "given with -target ("+o.targetMode+")"), nil
		}
	default:
		po.EchoPeer = func(ctx context.Context, async bool) (*perf.Peer, error) {
			args := []string{"echo", "-port", "0", "-bind", "127.0.0.1", "-timeout", timeout}
			if async {
				args = append(args, "-async")
			}
			return perf.StartProcess(ctx, "127.0.0.1", io.Discard, exe, args...)
		}
	}
	po.TCPPeer = func(ctx context.Context) (*perf.Peer, error) {
		return perf.StartProcess(ctx, "127.0.0.1", io.Discard, exe, "bench-peer", "-tcp-echo", "-bind", "127.0.0.1")
	}

	rep, runErr := perf.Run(ctx, po)
	if rep == nil {
		return runErr
	}
	if err := perf.WriteTable(s.out, rep); err != nil {
		return err
	}
	if o.jsonFile != "" {
		if err := writeFile(o.jsonFile, func(w io.Writer) error { return perf.WriteJSON(w, rep) }); err != nil {
			return err
		}
	}
	if o.chartFile != "" {
		if err := writeFile(o.chartFile, func(w io.Writer) error { return perf.WriteSVG(w, rep, !o.linear) }); err != nil {
			return err
		}
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("interrupted: %w", runErr)
	case rep.Failed() > 0:
		return fmt.Errorf("%d of %d scenarios failed", rep.Failed(), len(rep.Results))
	}
	return nil
}

// intList parses "a,b,c"; empty gives nil (the preset).
func intList(flagName, s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, usageError{fmt.Sprintf("%s: %v", flagName, err)}
		}
		out = append(out, n)
	}
	return out, nil
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	err = write(bw)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func setupBenchPeer(fs *flag.FlagSet) func(stdio, []string) error {
	tcpEcho := fs.Bool("tcp-echo", false, "echo raw bytes on every TCP connection")
	bind := fs.String("bind", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 0, "port to listen on; 0 picks a free one")
	return func(s stdio, args []string) error {
		if !*tcpEcho || len(args) > 0 {
			return usageError{"bench-peer needs -tcp-echo and no arguments"}
		}
		ctx, stop := untilSignal()
		defer stop()
		return runTCPEchoPeer(ctx, s, net.JoinHostPort(*bind, strconv.Itoa(*port)))
	}
}

// runTCPEchoPeer serves raw TCP echo on addr until ctx ends, announcing the
// port as echo does.
func runTCPEchoPeer(ctx context.Context, s stdio, addr string) error {
	e, err := perf.ListenTCPEcho(addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "%s%d\n", perf.Ready, e.Port())
	<-ctx.Done()
	if err := e.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
