package perf

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

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

// InProcessRelay starts a relay (StartRelay) in this process that forwards
// to target, and returns it as a peer at 127.0.0.1. cfg should listen on
// 127.0.0.1.
func InProcessRelay(cfg node.Config, target string) (*Peer, error) {
	r, err := StartRelay(context.Background(), cfg, []string{target})
	if err != nil {
		return nil, err
	}
	return &Peer{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Node.Port())),
		Desc: fmt.Sprintf("in-process %s relay to %s", PeerSpec{Async: cfg.Asynchronous}, target),
		stop: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return r.Node.Close(ctx)
		},
	}, nil
}
