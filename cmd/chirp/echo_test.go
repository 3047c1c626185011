package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/perf"
)

// lineWriter is a goroutine-safe output that reports the port of the first
// "listening on PORT" line written to it.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ports chan int
}

func newLineWriter() *lineWriter { return &lineWriter{ports: make(chan int, 1)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.buf.Len()
	w.buf.Write(p)
	if before == 0 || !strings.Contains(w.buf.String()[:before], perf.Ready) {
		for _, line := range strings.Split(w.buf.String(), "\n") {
			if i := strings.Index(line, perf.Ready); i >= 0 {
				if port, err := strconv.Atoi(line[i+len(perf.Ready):]); err == nil {
					select {
					case w.ports <- port:
					default:
					}
				}
			}
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startInProcess runs a node command (runEcho, runListen) on a goroutine
// and returns its port, its output and a function that stops it and
// returns its error.
func startInProcess(t *testing.T, run func(ctx context.Context, s stdio) error) (int, *lineWriter, *lineWriter, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := newLineWriter(), newLineWriter()
	done := make(chan error, 1)
	go func() { done <- run(ctx, stdio{in: strings.NewReader(""), out: out, err: errOut}) }()
	var stopped bool
	var result error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(10 * time.Second):
				result = fmt.Errorf("command did not stop within 10s")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case port := <-out.ports:
		return port, out, errOut, stop
	case port := <-errOut.ports: // listen announces on stderr
		return port, out, errOut, stop
	case err := <-done:
		stopped = true
		t.Fatalf("command ended before listening: %v\nstderr: %s", err, errOut.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("command did not print %q within 10s", perf.Ready+"PORT")
	}
	return 0, nil, nil, nil
}

// loopbackFlags are node flags for tests: loopback, free port, short timeout.
func loopbackFlags(async bool) *nodeFlags {
	return &nodeFlags{port: 0, bind: "127.0.0.1", async: async, timeout: time.Second}
}

func TestEchoAndSendTalkInBothModes(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(modeName(async), func(t *testing.T) {
			port, _, echoErr, stop := startInProcess(t, func(ctx context.Context, s stdio) error {
				return runEcho(ctx, s, loopbackFlags(async), &observeFlags{})
			})
			if !strings.Contains(echoErr.String(), "inline handler, plaintext") {
				t.Errorf("echo's banner: %q", echoErr.String())
			}
			var out, errOut bytes.Buffer
			err := runSend(context.Background(), stdio{out: &out, err: &errOut}, loopbackFlags(async),
				fmt.Sprintf("127.0.0.1:%d", port), []byte("hello"), sendOptions{n: 20, concurrency: 4, header: "hdr", echo: true})
			if err != nil {
				t.Fatalf("send: %v\n%s%s", err, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), "20 ok, 0 failed") || !strings.Contains(out.String(), "passes/s") {
				t.Errorf("send printed %q", out.String())
			}
			if err := stop(); err != nil {
				t.Errorf("echo: %v", err)
			}
			if !strings.Contains(echoErr.String(), "20 echoed, 0 failed") {
				t.Errorf("echo's summary: %q", echoErr.String())
			}
		})
	}
}

// certsIn runs "chirp certs" into a temporary directory and returns the
// paths of its two node files.
func certsIn(t *testing.T) (node1, node2 string) {
	t.Helper()
	dir := t.TempDir()
	if code, _, stderr := runCapture(t, "", "certs", "-dir", dir, "-nodes", "2", "-days", "1"); code != 0 {
		t.Fatalf("chirp certs: exit %d: %s", code, stderr)
	}
	return filepath.Join(dir, "node1.pem"), filepath.Join(dir, "node2.pem")
}

// TestEchoAndSendTalkOverTLS: echo and send with credentials from chirp
// certs, loopback encrypted on both ends, in both modes and both handler
// styles; a plaintext sender cannot talk to the TLS echo.
func TestEchoAndSendTalkOverTLS(t *testing.T) {
	echoChain, sendChain := certsIn(t)
	for _, c := range []struct {
		async   bool
		workers int
	}{{false, 0}, {true, 0}, {true, 4}} {
		t.Run(fmt.Sprintf("%s/workers=%d", modeName(c.async), c.workers), func(t *testing.T) {
			ef := loopbackFlags(c.async)
			ef.tlsChain, ef.alwaysEncrypt, ef.workers = echoChain, true, c.workers
			port, _, echoErr, stop := startInProcess(t, func(ctx context.Context, s stdio) error {
				return runEcho(ctx, s, ef, &observeFlags{})
			})
			dst := fmt.Sprintf("127.0.0.1:%d", port)
			sf := loopbackFlags(c.async)
			sf.tlsChain, sf.alwaysEncrypt, sf.workers = sendChain, true, c.workers
			var out, errOut bytes.Buffer
			err := runSend(context.Background(), stdio{out: &out, err: &errOut}, sf, dst, []byte("secret"),
				sendOptions{n: 20, concurrency: 4, echo: true})
			if err != nil || !strings.Contains(out.String(), "20 ok, 0 failed") {
				t.Fatalf("send over TLS: %v\n%s%s", err, out.String(), errOut.String())
			}
			// Plaintext to the TLS echo fails: the connection was encrypted.
			out.Reset()
			err = runSend(context.Background(), stdio{out: &out, err: &errOut}, loopbackFlags(c.async), dst, []byte("x"),
				sendOptions{n: 1, echo: true})
			if err == nil || !strings.Contains(out.String(), "0 ok, 1 failed") {
				t.Errorf("plaintext send to a TLS echo: %v\n%s", err, out.String())
			}
			if err := stop(); err != nil {
				t.Errorf("echo: %v", err)
			}
			for _, want := range []string{"20 echoed", "TLS with every peer, loopback too"} {
				if !strings.Contains(echoErr.String(), want) {
					t.Errorf("echo's stderr lacks %q: %q", want, echoErr.String())
				}
			}
		})
	}
}

func TestBindFlagSelectsFamilies(t *testing.T) {
	for _, tc := range []struct {
		bind           string
		noV4, noV6     bool
		bindV4, bindV6 string
	}{
		{"", false, false, "invalid IP", "invalid IP"},
		{"127.0.0.1", false, true, "127.0.0.1", "invalid IP"},
		{"::1", true, false, "invalid IP", "::1"},
		{"127.0.0.1, ::1", false, false, "127.0.0.1", "::1"},
	} {
		nf := nodeFlags{bind: tc.bind, timeout: time.Second}
		cfg, err := nf.config(nil)
		if err != nil {
			t.Errorf("-bind %q: %v", tc.bind, err)
			continue
		}
		if cfg.DisableV4 != tc.noV4 || cfg.DisableV6 != tc.noV6 || cfg.BindV4.String() != tc.bindV4 || cfg.BindV6.String() != tc.bindV6 {
			t.Errorf("-bind %q: %+v", tc.bind, cfg)
		}
		if !cfg.DisableEncryption {
			t.Errorf("-bind %q: encryption is on without -tls-chain", tc.bind)
		}
	}
}
