package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "listen",
		args:    "[flags]",
		summary: "run a node and print every message it receives",
		setup:   setupListen,
	})
}

func setupListen(fs *flag.FlagSet) func(stdio, []string) error {
	var nf nodeFlags
	nf.register(fs, 2998)
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	return func(s stdio, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		}
		if *count < 0 {
			return usageError{"-count must not be negative"}
		}
		ctx, stop := untilSignal()
		defer stop()
		return runListen(ctx, s, &nf, *count)
	}
}

// runListen runs a node that prints one line per received message and
// releases it, until ctx ends or count messages were printed.
func runListen(ctx context.Context, s stdio, nf *nodeFlags, count int) error {
	cfg, err := nf.config(s.err)
	if err != nil {
		return err
	}
	if nf.workers == 0 {
		cfg.Workers = 1 // lines in arrival order
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		seen int
	)
	cfg.ManualRelease = false
	cfg.Handler = node.HandlerFunc(func(m *node.Message) {
		mu.Lock()
		defer mu.Unlock()
		if count > 0 && seen >= count {
			return
		}
		seen++
		printMessage(s.out, m)
		if count > 0 && seen == count {
			cancel()
		}
	})
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "chirp listen: %s node %v, %s\n", modeName(cfg.Asynchronous), n.Identity(), security(cfg))
	mu.Lock() // a message may come in already
	fmt.Fprintf(s.out, "%s%d\n", perf.Ready, n.Port())
	mu.Unlock()
	<-ctx.Done()
	return closeNode(n)
}

// printMessage writes the line of one received message: origin, identities,
// serial, sizes, then header and data as dissect shows them.
func printMessage(w io.Writer, m *node.Message) {
	ack := ""
	if m.RequestedAck() {
		ack = " ack"
	}
	fmt.Fprintf(w, "from %v node=%v identity=%v serial=%d header_len=%d data_len=%d%s",
		m.Addr, m.RemoteIdentity, m.Identity, m.Serial, len(m.Header), len(m.Data), ack)
	if len(m.Header) > 0 {
		fmt.Fprintf(w, " header=%s", showBody(m.Header))
	}
	if len(m.Data) > 0 {
		fmt.Fprintf(w, " data=%s", showBody(m.Data))
	}
	fmt.Fprintln(w)
}
