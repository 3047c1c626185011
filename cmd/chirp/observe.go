package main

import (
	"flag"
	"fmt"

	"github.com/gochirp/chirp/metrics"
	"github.com/gochirp/chirp/node"
)

// observeFlags are -watch and -metrics, of the commands that run a node
// for a while (echo, listen).
type observeFlags struct {
	watch   bool
	metrics string
}

func (o *observeFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.watch, "watch", false, "print a one-line rate view to stderr every second: messages/s in and out,\nconnections, slots in use, errors so far")
	fs.StringVar(&o.metrics, "metrics", "", "serve the node's counters and send latency at http://`ADDR`/metrics in the\nPrometheus text format (e.g. 127.0.0.1:9100; port 0 picks a free one)")
}

// observer is what -watch and -metrics run for one node.
type observer struct {
	cmd       string
	o         *observeFlags
	m         *metrics.Metrics
	srv       *metrics.Server
	stopWatch func()
}

// prepare starts the metrics server, if asked for, and hooks the send
// latency into cfg; before the node starts, so that a bad -metrics
// address leaves no node behind.
func (o *observeFlags) prepare(cmd string, cfg *node.Config) (*observer, error) {
	ob := &observer{cmd: cmd, o: o}
	if o.metrics == "" {
		return ob, nil
	}
	ob.m = metrics.New()
	srv, err := ob.m.Serve(o.metrics)
	if err != nil {
		return nil, fmt.Errorf("-metrics %s: cannot listen: %s", o.metrics, cause(err))
	}
	ob.srv = srv
	cfg.OnSendDone = ob.m.ObserveSend
	return ob, nil
}

// start observes the running node n; it says where the metrics are.
func (ob *observer) start(s stdio, n *node.Node) {
	if ob.m != nil {
		ob.m.Watch(n)
		fmt.Fprintf(s.err, "chirp %s: metrics at http://%s/metrics\n", ob.cmd, ob.srv.Addr())
	}
	if ob.o.watch {
		ob.stopWatch = watch(ob.cmd, s, n.Stats)
	}
}

// stop ends the watch and the metrics server (before the node closes, or
// when it did not start).
func (ob *observer) stop() {
	if ob.stopWatch != nil {
		ob.stopWatch()
		ob.stopWatch = nil
	}
	if ob.srv != nil {
		_ = ob.srv.Close()
		ob.srv = nil
	}
}
