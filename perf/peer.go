package perf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gochirp/chirp/node"
)

// Ready is the line prefix with which a peer process announces its port on
// stdout: "listening on PORT". The chirp command's echo and bench-peer print
// it once they accept connections.
const Ready = "listening on "

// Peer is an echo peer: the address the harness sends to and how to stop it.
type Peer struct {
	// Addr is the peer's "host:port".
	Addr string
	// Desc says what the peer is, for the report.
	Desc string

	once sync.Once
	stop func() error
	err  error
}

// ExternalPeer is a peer that runs elsewhere: Close does nothing.
func ExternalPeer(addr, desc string) *Peer {
	return &Peer{Addr: addr, Desc: desc}
}

// Close stops the peer (once; later calls return the first result).
func (p *Peer) Close() error {
	p.once.Do(func() {
		if p.stop != nil {
			p.err = p.stop()
		}
	})
	return p.err
}

// Process-peer timings.
const (
	startTimeout = 20 * time.Second // until "listening on PORT"
	termGrace    = 3 * time.Second  // from SIGTERM until SIGKILL
)

// StartProcess runs name with args as a child process and waits until it
// prints "listening on PORT" on stdout; the peer is host:PORT. The child's
// stderr goes to log (nil: discarded); its last lines are part of the error
// when it fails to start. Close sends SIGTERM, then SIGKILL after a grace
// period, and waits for the child. The child is also killed when ctx ends,
// and (on Linux) when this process dies.
func StartProcess(ctx context.Context, host string, log io.Writer, name string, args ...string) (*Peer, error) {
	return startProcess(ctx, -1, host, log, name, args...)
}

// startProcess is StartProcess with the child pinned to cpu (-1: not).
func startProcess(ctx context.Context, cpu int, host string, log io.Writer, name string, args ...string) (*Peer, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = termGrace
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	tail := &tailWriter{max: 2048}
	if log != nil {
		cmd.Stderr = io.MultiWriter(tail, log)
	} else {
		cmd.Stderr = tail
	}
	if err := startOn(cmd, cpu); err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("child process %d (%s)", cmd.Process.Pid, strings.Join(append([]string{"chirp"}, args...), " "))
	ports := make(chan int, 1)
	stdoutDone := make(chan struct{})
	go func() {
		defer close(stdoutDone)
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), Ready); ok && !found {
				if port, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
					found = true
					ports <- port
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-stdoutDone:
		case <-time.After(termGrace):
			_ = cmd.Process.Kill()
			<-stdoutDone
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && !ee.Exited() {
			return nil // ended by our signal
		}
		return err
	}
	select {
	case port := <-ports:
		return &Peer{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Desc: desc, stop: stop}, nil
	case <-stdoutDone:
		_ = stop()
		return nil, fmt.Errorf("%s ended without %q on stdout: %s", desc, Ready+"PORT", tail)
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		_ = stop()
		return nil, fmt.Errorf("%s did not print %q within %v: %s", desc, Ready+"PORT", startTimeout, tail)
	case <-ctx.Done():
		_ = stop()
		return nil, ctx.Err()
	}
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.b))
	if s == "" {
		return "(no stderr output)"
	}
	return s
}

// InProcessEcho starts an echo node (StartEcho) of style in this process
// and returns it as a peer at 127.0.0.1. cfg should listen on 127.0.0.1.
func InProcessEcho(cfg node.Config, style Style) (*Peer, error) {
	e, err := StartEcho(cfg, style, nil)
	if err != nil {
		return nil, err
	}
	spec := PeerSpec{Async: cfg.Asynchronous, TLS: !cfg.DisableEncryption}
	return &Peer{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(e.Node.Port())),
		Desc: fmt.Sprintf("in-process %s echo node (%s)", spec, e.Style()),
		stop: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return e.Node.Close(ctx)
		},
	}, nil
}

// InProcessTCPEcho starts a raw TCP echo server (ListenTCPEcho) at
// 127.0.0.1 in this process and returns it as a peer.
func InProcessTCPEcho() (*Peer, error) {
	e, err := ListenTCPEcho("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Peer{Addr: e.Addr(), Desc: "in-process TCP echo", stop: e.Close}, nil
}

// TCPEcho is a raw TCP echo server: every byte read on a connection is
// written back on it. It is the other end of the raw-TCP baseline.
type TCPEcho struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// ListenTCPEcho listens on addr ("host:port", port 0 for any) and serves
// until Close.
func ListenTCPEcho(addr string) (*TCPEcho, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	e := &TCPEcho{ln: ln, conns: make(map[net.Conn]struct{})}
	e.wg.Add(1)
	go e.accept()
	return e, nil
}

// Addr is the listening address, "host:port".
func (e *TCPEcho) Addr() string { return e.ln.Addr().String() }

// Port is the listening port.
func (e *TCPEcho) Port() int { return e.ln.Addr().(*net.TCPAddr).Port }

func (e *TCPEcho) accept() {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		if e.conns == nil { // closed
			e.mu.Unlock()
			c.Close()
			return
		}
		e.conns[c] = struct{}{}
		e.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			_, _ = io.Copy(c, c)
			c.Close()
			e.mu.Lock()
			delete(e.conns, c)
			e.mu.Unlock()
		}()
	}
}

// Close stops listening, closes every connection and waits for them.
func (e *TCPEcho) Close() error {
	err := e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		c.Close()
	}
	e.conns = nil
	e.mu.Unlock()
	e.wg.Wait()
	return err
}
