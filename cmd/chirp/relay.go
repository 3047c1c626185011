package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "relay",
		args:    "-to HOST:PORT[,HOST:PORT...] [flags]",
		summary: "run a router: forward every message to a -to node, route the replies back",
		notes:   relayNotes,
		env:     true,
		setup:   setupRelay,
	})
}

const relayNotes = `
Each message goes to the -to node with the fewest forwards in flight (ties
in turn; one whose forward failed is passed over for -timeout), as it is:
same identity, header and data. It is held until its
forward finished and only then released, so a synchronous sender completes
when the worker released the message (throttling passes through), and never
for a forward that failed: that sender gets no ACK and times out. A message
that comes back from a -to node with the identity of a forward (m.Reply,
chirp echo) goes to where that message came from: request works through the
relay. Keep the relay synchronous (the default) if its senders are.
`

func setupRelay(fs *flag.FlagSet) func(stdio, []string) error {
	var (
		nf nodeFlags
		of observeFlags
		to string
	)
	nf.register(fs, nodeUse{server: true, timeout: "timeout of a forward: the write and, synchronous, the worker's ACK"})
	of.register(fs)
	fs.StringVar(&to, "to", "", "comma-separated `HOST:PORT` of the nodes to forward to (required)")
	return func(s stdio, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		}
		var targets []string
		for _, t := range strings.Split(to, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(t); err != nil {
				return usageError{fmt.Sprintf("-to %q: want HOST:PORT", t)}
			}
			targets = append(targets, t)
		}
		if len(targets) == 0 {
			return usageError{"-to is required: the nodes to forward to"}
		}
		ctx, stop := untilSignal()
		defer stop()
		return runRelay(ctx, s, &nf, &of, targets)
	}
}

// runRelay runs the relay until ctx ends. It prints "listening on PORT" on
// stdout once the node accepts connections; the rest goes to stderr.
func runRelay(ctx context.Context, s stdio, nf *nodeFlags, of *observeFlags, targets []string) error {
	cfg, err := nf.config(s.err)
	if err != nil {
		return err
	}
	ob, err := of.prepare("relay", &cfg)
	if err != nil {
		return err
	}
	defer ob.stop()
	r, err := perf.StartRelay(ctx, cfg, targets)
	if err != nil {
		return nf.startError(err)
	}
	fmt.Fprintf(s.err, "chirp relay: %s node %v to %s, %s\n", modeName(cfg.Asynchronous), r.Node.Identity(),
		strings.Join(targets, ", "), security(cfg))
	fmt.Fprintf(s.out, "%s%d\n", perf.Ready, r.Node.Port())
	ob.start(s, r.Node)
	<-ctx.Done()
	ob.stop()
	err = closeNode(r.Node)
	st := r.Router.Stats()
	fmt.Fprintf(s.err, "chirp relay: %d forwarded, %d replies, %d failed, %d unroutable\n",
		st.Forwarded, st.Replies, st.Failed, st.Unroutable)
	return err
}
