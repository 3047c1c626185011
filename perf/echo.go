package perf

import (
	"sync/atomic"

	"github.com/gochirp/chirp/node"
)

// Echo counts what an echo node did.
type Echo struct {
	// Node is the running echo node; close it with Node.Close.
	Node *node.Node

	echoed, failed atomic.Uint64
	onError        func(error)
	sentFn         func(*node.Message, error) // e.sent, made once: no allocation per echo
}

// Echoed is the number of messages sent back successfully.
func (e *Echo) Echoed() uint64 { return e.echoed.Load() }

// Failed is the number of echoes whose send failed.
func (e *Echo) Failed() uint64 { return e.failed.Load() }

// StartEcho starts a node with cfg that sends every message it receives back
// to where it came from, the same message with the same identity, header and
// data. cfg.Handler and cfg.ManualRelease are overwritten: the received
// message is released when its echo finished (acknowledged in synchronous
// mode, written in asynchronous mode), so a synchronous sender learns of its
// release only after the echo reached it. onError, if not nil, is called with
// each failed echo, on the node's event loop: it must not block.
func StartEcho(cfg node.Config, onError func(error)) (*Echo, error) {
	e := &Echo{onError: onError}
	e.sentFn = e.sent
	cfg.ManualRelease = true
	cfg.Handler = node.HandlerFunc(e.serve)
	n, err := node.Start(cfg)
	if err != nil {
		return nil, err
	}
	e.Node = n
	return e, nil
}

func (e *Echo) serve(m *node.Message) {
	if err := e.Node.SendAsync(m, e.sentFn); err != nil {
		e.sent(m, err)
	}
}

// sent runs when an echo finished.
func (e *Echo) sent(m *node.Message, err error) {
	if err != nil {
		e.failed.Add(1)
		if e.onError != nil {
			e.onError(err)
		}
	} else {
		e.echoed.Add(1)
	}
	_ = m.Release()
}
