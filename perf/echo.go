package perf

import (
	"fmt"
	"sync/atomic"

	"github.com/gochirp/chirp/node"
)

// Style is how a node of the harness (echo node or client) handles the
// messages it receives.
type Style string

const (
	// StyleInline handles received messages on the node's event loop
	// (node.ReceiveInline) and sends and releases from there (SendOnLoop,
	// ReleaseOnLoop): no goroutine hop on the way. It is libchirp's way,
	// whose callbacks run on its loop, so it is the fair comparison with C,
	// and the default.
	StyleInline Style = "inline"
	// StyleWorkers handles received messages on the node's worker pool
	// (node.ReceiveWorkers), and every send and release is handed to the
	// loop (SendAsync, Release): what an application that may block does.
	StyleWorkers Style = "workers"
)

// check returns the style, "" meaning StyleInline, or an error.
func (s Style) check() (Style, error) {
	switch s {
	case "", StyleInline:
		return StyleInline, nil
	case StyleWorkers:
		return s, nil
	}
	return s, fmt.Errorf("%w: style %q (want %s or %s)", node.ErrValue, s, StyleInline, StyleWorkers)
}

// Echo counts what an echo node did.
type Echo struct {
	// Node is the running echo node; close it with Node.Close.
	Node *node.Node

	echoed, failed atomic.Uint64
	onError        func(*node.Message, error)
	style          Style
	sentFn         func(*node.Message, error) // e.sent, made once: no allocation per echo
}

// Echoed is the number of messages sent back successfully.
func (e *Echo) Echoed() uint64 { return e.echoed.Load() }

// Failed is the number of echoes whose send failed.
func (e *Echo) Failed() uint64 { return e.failed.Load() }

// Style is how the echo node handles messages.
func (e *Echo) Style() Style { return e.style }

// StartEcho starts a node with cfg that sends every message it receives back
// to where it came from, the same message with the same identity, header and
// data, without copying it. cfg.Handler, cfg.Receive and cfg.ManualRelease
// are overwritten: the handler sends the message back and returns, and the
// node's automatic release frees it when its echo finished (acknowledged in
// synchronous mode, written in asynchronous mode), so a synchronous sender
// learns of its release only after the echo reached it. The node then
// reuses the message: an echo allocates nothing.
//
// With StyleInline ("" too) all of it happens on the node's event loop;
// with StyleWorkers the handler runs on cfg.Workers goroutines and hands
// the echo and the release to the loop. onError, if not nil, is called with
// each failed echo and its error, on the node's event loop (or a worker),
// before the message is released: it must not block or keep the message.
func StartEcho(cfg node.Config, style Style, onError func(*node.Message, error)) (*Echo, error) {
	style, err := style.check()
	if err != nil {
		return nil, err
	}
	e := &Echo{onError: onError, style: style}
	cfg.ManualRelease = false
	e.sentFn = e.sent
	if style == StyleInline {
		cfg.Receive = node.ReceiveInline
		cfg.Handler = node.HandlerFunc(e.serveOnLoop)
	} else {
		cfg.Receive = node.ReceiveWorkers
		cfg.Handler = node.HandlerFunc(e.serve)
	}
	n, err := node.Start(cfg)
	if err != nil {
		return nil, err
	}
	e.Node = n
	return e, nil
}

// serveOnLoop is the inline handler: zero copy, on the loop. It reaches
// the node through the message: it may run before StartEcho set e.Node.
func (e *Echo) serveOnLoop(m *node.Message) {
	if err := m.Node().SendOnLoop(m, e.sentFn); err != nil {
		e.sent(m, err)
	}
}

// serve is the worker pool's handler.
func (e *Echo) serve(m *node.Message) {
	if err := m.Node().SendAsync(m, e.sentFn); err != nil {
		e.sent(m, err)
	}
}

// sent runs when an echo finished (on the loop, or on the handler's
// goroutine when the send was refused); the node releases the message
// afterwards.
func (e *Echo) sent(m *node.Message, err error) { e.count(m, err) }

func (e *Echo) count(m *node.Message, err error) {
	if err != nil {
		e.failed.Add(1)
		if e.onError != nil {
			e.onError(m, err)
		}
	} else {
		e.echoed.Add(1)
	}
}
