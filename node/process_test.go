package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/childproc"
)

// TestChildEchoNode is not a test: it is the echo node of the two-process
// tests, run in a child process started by them.
func TestChildEchoNode(t *testing.T) {
	mode := os.Getenv("CHIRP_CHILD_ECHO")
	if mode == "" {
		return // only in the child
	}
	var n *Node
	cfg := testConfig(mode == "async", echo(&n))
	cfg.Timeout = 2 * time.Second
	var err error
	n, err = Start(cfg)
	if err != nil {
		childproc.Fail(err)
	}
	childproc.Serve(n.Port(), 60*time.Second, nil)
	_ = n.Close(context.Background())
	os.Exit(0)
}

// startChild runs an echo node in a child process and returns its port.
func startChild(t *testing.T, mode string) (*exec.Cmd, int) {
	return childproc.Start(t, "TestChildEchoNode", "CHIRP_CHILD_ECHO", mode)
}

func TestTwoProcessesExchangeBothModes(t *testing.T) {
	for _, mode := range []struct{ child, parent string }{
		{"sync", "sync"}, {"async", "async"}, {"sync", "async"}, {"async", "sync"},
	} {
		t.Run(mode.parent+"-to-"+mode.child, func(t *testing.T) {
			_, port := startChild(t, mode.child)
			got := make(chan string, 10)
			n := startNode(t, testConfig(mode.parent == "async", HandlerFunc(func(m *Message) { got <- string(m.Data) })))
			for i := 0; i < 5; i++ {
				m, _ := NewMessage(fmt.Sprintf("127.0.0.1:%d", port), []byte("ping "+strconv.Itoa(i)))
				if err := n.Send(ctxT(t), m); err != nil {
					t.Fatalf("send: %v", err)
				}
				select {
				case s := <-got:
					if s != "ping "+strconv.Itoa(i) {
						t.Fatalf("echo %q", s)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no echo from the child")
				}
			}
		})
	}
}

// TestSyncSendsWhileRemoteDiesAllReportBack is the promise of synchronous
// mode: the remote process is killed during a run of sends, and every send
// still ends in success or an error, none silently lost.
func TestSyncSendsWhileRemoteDiesAllReportBack(t *testing.T) {
	cmd, port := startChild(t, "sync")
	n := startNode(t, testConfig(false, nil))
	const sends = 60
	var ok, failed atomic.Int64
	done := make(chan struct{}, sends)
	dst := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < sends; i++ {
		m, _ := NewMessage(dst, []byte("work "+strconv.Itoa(i)))
		err := n.SendAsync(m, func(_ *Message, err error) {
			if err == nil {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
			done <- struct{}{}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Kill the child once some sends went through.
	deadline := time.Now().Add(20 * time.Second)
	for ok.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < sends; i++ {
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("only %d of %d sends reported (ok %d, failed %d)", i, sends, ok.Load(), failed.Load())
		}
	}
	t.Logf("ok %d failed %d", ok.Load(), failed.Load())
	if ok.Load()+failed.Load() != sends {
		t.Fatalf("ok %d + failed %d != %d", ok.Load(), failed.Load(), sends)
	}
	if ok.Load() == 0 || failed.Load() == 0 {
		t.Fatalf("expected both successes and failures: ok %d failed %d", ok.Load(), failed.Load())
	}
	if errors.Is(nil, ErrShutdown) {
		t.Fatal("unreachable")
	}
}
