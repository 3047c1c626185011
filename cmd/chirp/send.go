package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "send",
		args:    "[flags] HOST:PORT DATA|-",
		summary: "send messages to a node; print how many went well or failed, the time and passes/s",
		notes:   "\nDATA is the message's data; - reads it from standard input. With -size, give no DATA.\n",
		env:     true,
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
	nf.register(fs, nodeUse{
		timeout: "send timeout: the write and, synchronous, the remote's ACK",
		workers: "goroutines matching echoes (-echo); 0: on the event loop (fastest, as libchirp)"})
	fs.Int64Var(&opts.n, "n", 1, "number of messages to send")
	fs.IntVar(&opts.size, "size", -1, "send `BYTES` of generated data instead of DATA")
	fs.IntVar(&opts.concurrency, "concurrency", 1, "messages in flight at once (a synchronous node still sends one at a time per remote)")
	fs.StringVar(&opts.header, "header", "", "message header (text)")
	fs.BoolVar(&opts.echo, "echo", false, "a pass is a send and its echo back (from an echo node), not only the send (acknowledged\nwhen synchronous, written when asynchronous)")
	return func(s stdio, args []string) error {
		var data []byte
		switch {
		case len(args) == 0:
			return usageError{"want HOST:PORT and DATA (- reads standard input)"}
		case len(args) > 2:
			return usageError{fmt.Sprintf("want HOST:PORT and one DATA, got %d arguments (quote DATA with spaces)", len(args))}
		case opts.n < 1 || opts.concurrency < 1:
			return usageError{"-n and -concurrency must be at least 1"}
		case len(args) == 2 && opts.size >= 0:
			return usageError{"give DATA or -size, not both"}
		case len(args) == 1 && opts.size < 0:
			return usageError{"want DATA after HOST:PORT (- reads standard input), or -size"}
		case opts.size >= 0:
			data = bytes.Repeat([]byte("chirp"), opts.size/5+1)[:opts.size]
		default:
			var err error
			if data, err = readData(s, args[1]); err != nil {
				return err
			}
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
		return nf.startError(err)
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
	stopProgress := func() {}
	if s.errTTY {
		stopProgress = statusLine(s.err, true, progressAfter, time.Second, func() string {
			ok, failed := c.Progress()
			return fmt.Sprintf("chirp send: %s of %s done, %s/s, %d failed", perf.Thousands(float64(ok+failed)),
				perf.Thousands(float64(opts.n)), perf.Thousands(float64(ok)/time.Since(start).Seconds()), failed)
		})
	}
	out, runErr := c.Run(ctx, ld)
	elapsed := time.Since(start)
	stopProgress()

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
	switch {
	case runErr != nil && out.Failed > 0:
		return fmt.Errorf("%d of %d sends failed, then: %v", out.Failed, opts.n, sendError(runErr, dst, nf.timeout))
	case runErr != nil:
		return sendError(runErr, dst, nf.timeout)
	case out.Failed > 0:
		return fmt.Errorf("%d of %d sends failed; the first: %v", out.Failed, opts.n, sendError(out.FirstErr, dst, nf.timeout))
	}
	return nil
}
