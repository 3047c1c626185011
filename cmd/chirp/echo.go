package main

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"

	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "echo",
		args:    "[flags]",
		summary: "run a node that sends every message it receives back (the benchmarks' echo peer)",
		env:     true,
		setup:   setupEcho,
	})
}

// maxEchoErrors bounds the failed echoes echo reports one by one.
const maxEchoErrors = 10

func setupEcho(fs *flag.FlagSet) func(stdio, []string) error {
	var (
		nf nodeFlags
		of observeFlags
	)
	nf.register(fs, nodeUse{server: true,
		timeout: "timeout of an echo: the write and, synchronous, the sender's ACK",
		workers: "goroutines sending the echoes; 0: on the event loop (zero copy, fastest, as libchirp)"})
	of.register(fs)
	return func(s stdio, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		}
		ctx, stop := untilSignal()
		defer stop()
		return runEcho(ctx, s, &nf, &of)
	}
}

// runEcho runs the echo node until ctx ends. It prints "listening on PORT"
// on stdout once the node accepts connections; the rest goes to stderr.
func runEcho(ctx context.Context, s stdio, nf *nodeFlags, of *observeFlags) error {
	cfg, err := nf.config(s.err)
	if err != nil {
		return err
	}
	ob, err := of.prepare("echo", &cfg)
	if err != nil {
		return err
	}
	defer ob.stop()
	type failure struct {
		to  string
		err error
	}
	errs := make(chan failure, maxEchoErrors)
	var dropped atomic.Uint64
	e, err := perf.StartEcho(cfg, nf.style(), func(m *node.Message, err error) {
		select { // on the node's loop: never block
		case errs <- failure{m.Addr.String(), err}:
		default:
			dropped.Add(1)
		}
	})
	if err != nil {
		return nf.startError(err)
	}
	fmt.Fprintf(s.err, "chirp echo: %s node %v, %s handler, %s\n", modeName(cfg.Asynchronous), e.Node.Identity(),
		e.Style(), security(cfg))
	fmt.Fprintf(s.out, "%s%d\n", perf.Ready, e.Node.Port())
	ob.start(s, e.Node)
	show := func(f failure) {
		fmt.Fprintf(s.err, "chirp echo: echo failed: %v\n", sendError(f.err, f.to, nf.timeout))
	}
	for done := false; !done; {
		select {
		case f := <-errs:
			show(f)
		case <-ctx.Done():
			done = true
		}
	}
	ob.stop()
	err = closeNode(e.Node)
	for len(errs) > 0 { // echoes that failed while closing
		show(<-errs)
	}
	fmt.Fprintf(s.err, "chirp echo: %d echoed, %d failed\n", e.Echoed(), e.Failed())
	if n := dropped.Load(); n > 0 {
		fmt.Fprintf(s.err, "chirp echo: %d failed echoes not shown\n", n)
	}
	return err
}
