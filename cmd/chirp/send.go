package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "send",
		args:    "[flags] HOST:PORT [DATA|-]",
		summary: "send messages to a node; print how many went well or failed, the time and passes/s",
		setup:   setupSend,
	})
}

// sendOptions are the knobs of send beyond the node's.
type sendOptions struct {
	n           int64
	size        int
	concurrency int
	header      string
	echo        bool
}

func setupSend(fs *flag.FlagSet) func(stdio, []string) error {
	var (
		nf   nodeFlags
		opts sendOptions
	)
	nf.register(fs, 0)
	fs.Int64Var(&opts.n, "n", 1, "number of messages to send")
	fs.IntVar(&opts.size, "size", -1, "send `BYTES` of generated data (-1: DATA, or stdin when DATA is absent or -)")
	fs.IntVar(&opts.concurrency, "concurrency", 1, "messages in flight at once (a synchronous node still sends one at a time per remote)")
	fs.StringVar(&opts.header, "header", "", "message header (text)")
	fs.BoolVar(&opts.echo, "echo", false, "a pass is a send and its echo back (from an echo node), not only the send (acknowledged when synchronous, written when asynchronous)")
	return func(s stdio, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usageError{"want HOST:PORT and at most one DATA"}
		}
		if opts.n < 1 || opts.concurrency < 1 {
			return usageError{"-n and -concurrency must be at least 1"}
		}
		var data []byte
		switch {
		case len(args) == 2 && opts.size >= 0:
			return usageError{"give DATA or -size, not both"}
		case len(args) == 2 && args[1] != "-":
			data = []byte(args[1])
		case opts.size >= 0:
			data = bytes.Repeat([]byte("chirp"), opts.size/5+1)[:opts.size]
		default:
			b, err := io.ReadAll(s.in)
			if err != nil {
				return fmt.Errorf("reading stdin: %w", err)
			}
			data = b
		}
		ctx, stop := untilSignal()
		defer stop()
		return runSend(ctx, s, &nf, args[0], data, opts)
	}
}

// runSend sends opts.n messages with data to dst and prints what happened.
// It fails when any send failed.
func runSend(ctx context.Context, s stdio, nf *nodeFlags, dst string, data []byte, opts sendOptions) error {
	cfg, err := nf.config(s.err)
	if err != nil {
		return err
	}
	to, err := resolve(ctx, dst)
	if err != nil {
		return err
	}
	c, err := perf.NewClient(cfg, nf.style())
	if err != nil {
		return err
	}
	defer closeNode(c.Node)
	ld := perf.Load{
		Addr:     to.String(),
		InFlight: opts.concurrency,
		Data:     data,
		Count:    opts.n,
		WaitEcho: opts.echo,
		Stall:    2*cfg.Timeout + time.Second,
	}
	if opts.header != "" {
		ld.Header = []byte(opts.header)
	}
	start := time.Now()
	out, runErr := c.Run(ctx, ld)
	elapsed := time.Since(start)

	what := "sent"
	if opts.echo {
		what = "sent and echoed"
	}
	fmt.Fprintf(s.out, "%s %d of %d messages (%d header + %d data bytes) to %s, %s, %d in flight: %d ok, %d failed, %v",
		what, out.Passes, opts.n, len(ld.Header), len(data), ld.Addr, modeName(cfg.Asynchronous),
		min(int64(opts.concurrency), opts.n), out.Passes, out.Failed, elapsed.Round(time.Microsecond))
	if out.Passes > 0 {
		fmt.Fprintf(s.out, ", %s passes/s", perf.Thousands(float64(out.Passes)/elapsed.Seconds()))
	}
	fmt.Fprintln(s.out)
	if runErr != nil {
		return runErr
	}
	if out.Failed > 0 {
		first := out.FirstErr.Error()
		if !strings.Contains(first, ld.Addr) {
			first = ld.Addr + ": " + first
		}
		return fmt.Errorf("%d of %d sends failed; the first: %s", out.Failed, opts.n, first)
	}
	return nil
}
