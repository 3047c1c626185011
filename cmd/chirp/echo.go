package main

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"

	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "echo",
		args:    "[flags]",
		summary: "run a node that sends every message it receives back (the benchmarks' echo peer)",
		setup:   setupEcho,
	})
}

// maxEchoErrors bounds the failed echoes echo reports one by one.
const maxEchoErrors = 10

func setupEcho(fs *flag.FlagSet) func(stdio, []string) error {
	var nf nodeFlags
	nf.register(fs, 2998)
	return func(s stdio, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		}
		ctx, stop := untilSignal()
		defer stop()
		return runEcho(ctx, s, &nf)
	}
}

// runEcho runs the echo node until ctx ends. It prints "listening on PORT"
// on stdout once the node accepts connections; the rest goes to stderr.
func runEcho(ctx context.Context, s stdio, nf *nodeFlags) error {
	cfg, err := nf.config(s.err)
	if err != nil {
		return err
	}
	errs := make(chan error, maxEchoErrors)
	var dropped atomic.Uint64
	e, err := perf.StartEcho(cfg, nf.style(), func(err error) {
		select { // on the node's loop: never block
		case errs <- err:
		default:
			dropped.Add(1)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "chirp echo: %s node %v, %s handler, %s\n", modeName(cfg.Asynchronous), e.Node.Identity(),
		e.Style(), security(cfg))
	fmt.Fprintf(s.out, "%s%d\n", perf.Ready, e.Node.Port())
	for done := false; !done; {
		select {
		case err := <-errs:
			fmt.Fprintf(s.err, "chirp echo: %v\n", err)
		case <-ctx.Done():
			done = true
		}
	}
	err = closeNode(e.Node)
	fmt.Fprintf(s.err, "chirp echo: %d echoed, %d failed\n", e.Echoed(), e.Failed())
	if n := dropped.Load(); n > 0 {
		fmt.Fprintf(s.err, "chirp echo: %d failed echoes not shown\n", n)
	}
	return err
}
