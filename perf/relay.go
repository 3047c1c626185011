package perf

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gochirp/chirp/node"
)

// Relay is a router node (node.Router): it forwards every message it
// receives to one of its targets and routes their replies back, holding
// each message until its forward finished. Between the harness and an
// echo peer it measures what a hop costs; the chirp command's relay is
// one.
type Relay struct {
	// Node is the running relay node; close it with Node.Close.
	Node *node.Node
	// Router is its handler, with the counters.
	Router *node.Router
}

// StartRelay starts a node with cfg that relays to targets ("host:port",
// looked up within ctx). cfg.Handler, cfg.Receive and cfg.ManualRelease
// are overwritten: the router runs on the node's event loop (nothing of it
// blocks) and releases each message itself, once its forward succeeded.
func StartRelay(ctx context.Context, cfg node.Config, targets []string) (*Relay, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: a relay needs at least one target", node.ErrValue)
	}
	addrs := make([]netip.AddrPort, len(targets))
	for i, t := range targets {
		a, err := node.ResolveAddr(ctx, t)
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	rt, err := node.NewRouter(addrs...)
	if err != nil {
		return nil, err
	}
	cfg.Handler, cfg.Receive, cfg.ManualRelease = rt, node.ReceiveInline, false
	n, err := node.Start(cfg)
	if err != nil {
		return nil, err
	}
	return &Relay{Node: n, Router: rt}, nil
}
