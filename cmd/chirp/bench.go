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
	"path/filepath"
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
	tls        bool
	tlsSet     bool // -tls given (else: on with -quick)
	tlsChain   string
	echoStyle  string
	relay      bool
	busyPoll   time.Duration
	placement  string
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
	fs.BoolVar(&o.tls, "tls", false, "also measure over TLS, both nodes encrypting loopback (-always-encrypt): tls sync single 5B,\n"+
		"tls async pooled16 5B, 1KiB, 64KiB (quick: tls async pooled16 1KiB; with -sizes or -inflight the whole\n"+
		"grid), each against its plaintext twin; credentials are made in a temporary directory unless -tls-chain\n"+
		"names them (default: on with -quick)")
	fs.StringVar(&o.tlsChain, "tls-chain", "", "PEM `FILE` with key, certificate and CA (see chirp certs) for the TLS scenarios (implies -tls);\n"+
		"with -target the local node's, and the target speaks TLS: the whole grid runs over TLS, nothing in plaintext")
	fs.StringVar(&o.echoStyle, "echo-style", string(perf.StyleInline), "how both nodes handle received messages: inline (on the event loop, zero-copy echo, as\n"+
		"libchirp's callbacks) or workers (a handler goroutine pool; the echo child runs with -workers 16)")
	fs.BoolVar(&o.relay, "relay", true, "also measure relay sync single 5B and relay async pooled16 5B: the passes go through a\n"+
		"chirp relay child in front of the echo peer, each against the same scenario direct (plaintext only)")
	fs.DurationVar(&o.busyPoll, "busy-poll", 0, "-busy-poll of both nodes (the local one and the echo and relay children): how long their\nevent loops keep polling before they sleep, at most 10ms (0: sleep at once)")
	fs.StringVar(&o.placement, "placement", perf.PlaceFree, "where the processes run (Linux): free (as the kernel places them), same (this process and the\n"+
		"peers it starts on one CPU) or apart (this process on one CPU, its peers on another; a -target peer runs where\n"+
		"it was started, e.g. under taskset). Single-in-flight figures depend on it most, see README")
	return func(s stdio, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		}
		fs.Visit(func(f *flag.Flag) { o.tlsSet = o.tlsSet || f.Name == "tls" })
		ctx, stop := untilSignal()
		defer stop()
		return runBench(ctx, s, o)
	}
}

// runBench measures, prints the table on stdout and writes the files. It
// fails when a scenario failed, so a smoke test notices.
func runBench(ctx context.Context, s stdio, o benchOptions) error {
	po := perf.Options{Quick: o.quick, Runs: o.runs, RunTime: o.runTime, Warmup: o.warmup, Timeout: o.timeout,
		Style: perf.Style(o.echoStyle), Relay: o.relay, BusyPoll: o.busyPoll}
	if o.busyPoll < 0 || o.busyPoll > maxBusyPoll {
		return usageError{fmt.Sprintf("-busy-poll %v: want 0 to %v", o.busyPoll, maxBusyPoll)}
	}
	if s.errTTY { // progress on a terminal only; the table and the files are the output
		po.Progress = s.err
	}
	if po.Style != perf.StyleInline && po.Style != perf.StyleWorkers {
		return usageError{fmt.Sprintf("-echo-style %q: want inline or workers", o.echoStyle)}
	}
	if !o.tlsSet && o.quick {
		o.tls = true // CI smoke covers TLS
	}
	switch {
	case o.tlsChain != "" && !o.tlsSet:
		o.tls = true
	case o.tlsChain != "" && !o.tls:
		return usageError{"-tls-chain with -tls=false"}
	}
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
	switch o.placement {
	case perf.PlaceFree, perf.PlaceSame, perf.PlaceApart:
	default:
		return usageError{fmt.Sprintf("-placement %q: want %s, %s or %s", o.placement, perf.PlaceFree, perf.PlaceSame, perf.PlaceApart)}
	}
	place, err := perf.Place(o.placement)
	if err != nil {
		return err
	}
	po.Placement = place
	timeout := o.timeout.String()
	busyPoll := "-busy-poll=" + o.busyPoll.String()
	switch {
	case o.target != "":
		if o.targetMode != "sync" && o.targetMode != "async" {
			return usageError{fmt.Sprintf("-target-mode %q: want sync or async", o.targetMode)}
		}
		if _, _, err := net.SplitHostPort(o.target); err != nil {
			return usageError{fmt.Sprintf("-target: %v", err)}
		}
		if o.tls && o.tlsChain == "" {
			if o.tlsSet {
				return usageError{"-tls with -target needs -tls-chain: credentials the target trusts"}
			}
			o.tls = false // -quick against a plaintext target
		}
		desc := "given with -target (" + o.targetMode + ")"
		if o.tlsChain != "" {
			po.OnlyTLS, po.TLSChain = true, o.tlsChain
			desc = "given with -target (" + o.targetMode + ", TLS)"
		}
		po.EchoPeer = func(_ context.Context, spec perf.PeerSpec) (*perf.Peer, error) {
			if spec.Async != (o.targetMode == "async") {
				return nil, fmt.Errorf("%w: the -target peer is %s", perf.ErrNoPeer, o.targetMode)
			}
			return perf.ExternalPeer(o.target, desc), nil
		}
	default:
		echoChain := o.tlsChain
		if o.tls {
			po.TLS, po.TLSChain = true, o.tlsChain
			if o.tlsChain == "" {
				dir, err := os.MkdirTemp("", "chirp-bench-tls-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if s.errTTY {
					fmt.Fprintf(s.err, "making temporary TLS credentials in %s\n", dir)
				}
				if err := makeCerts(io.Discard, certsOptions{dir: dir, nodes: 2, days: 1, key: "ecdsa"}); err != nil {
					return fmt.Errorf("making TLS credentials: %w", err)
				}
				echoChain, po.TLSChain = filepath.Join(dir, "node1.pem"), filepath.Join(dir, "node2.pem")
			}
		}
		po.EchoPeer = func(ctx context.Context, spec perf.PeerSpec) (*perf.Peer, error) {
			args := []string{"echo", "-port", "0", "-bind", "127.0.0.1", "-timeout", timeout, busyPoll}
			if spec.Async {
				args = append(args, "-async")
			}
			if spec.TLS {
				args = append(args, "-tls-chain", echoChain, "-always-encrypt")
			} else {
				args = append(args, "-tls-chain=") // not the user's CHIRP_TLS_CHAIN
			}
			if po.Style == perf.StyleWorkers {
				args = append(args, "-workers", "16")
			}
			return place.StartProcess(ctx, "127.0.0.1", io.Discard, exe, args...)
		}
	}
	po.RelayPeer = func(ctx context.Context, spec perf.PeerSpec, target string) (*perf.Peer, error) {
		args := []string{"relay", "-port", "0", "-bind", "127.0.0.1", "-timeout", timeout, busyPoll, "-to", target, "-tls-chain="}
		if spec.Async {
			args = append(args, "-async")
		}
		return place.StartProcess(ctx, "127.0.0.1", io.Discard, exe, args...)
	}
	po.TCPPeer = func(ctx context.Context) (*perf.Peer, error) {
		return place.StartProcess(ctx, "127.0.0.1", io.Discard, exe, "bench-peer", "-tcp-echo", "-bind", "127.0.0.1")
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
