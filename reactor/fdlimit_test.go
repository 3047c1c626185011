package reactor

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/childproc"
)

// childFDLimit is RLIMIT_NOFILE of the child in TestAcceptSurvivesFDExhaustion.
const childFDLimit = 64

// TestChildLowFDEcho is not a test: it is the echo server of
// TestAcceptSurvivesFDExhaustion, run in a child process with a low
// descriptor limit. CHIRP_CHILD_LOWFD names its log file.
func TestChildLowFDEcho(t *testing.T) {
	logPath := os.Getenv("CHIRP_CHILD_LOWFD")
	if logPath == "" {
		return
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		childproc.Fail(err)
	}
	lim.Cur = childFDLimit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		childproc.Fail(err)
	}
	f, err := os.Create(logPath)
	if err != nil {
		childproc.Fail(err)
	}
	log := slog.New(slog.NewTextHandler(f, nil))
	r, err := Start(Config{ListenV4: "127.0.0.1", Handler: echoHandler(), Logger: log})
	if err != nil {
		childproc.Fail(err)
	}
	if childproc.Serve(r.Port(), 2*time.Minute, r.Done()) {
		fmt.Fprintln(f, "LOOP ENDED", r.Err())
	}
	os.Exit(0)
}

// TestAcceptSurvivesFDExhaustion runs an echo reactor in a child process
// limited to 64 descriptors and storms it with connections: accept fails
// with EMFILE, which gnet's own acceptor treated as fatal. The reactor
// must log it at Warn, keep serving the connections it has during and
// after the storm, and accept new ones once descriptors are free again.
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	guard(t)
	logPath := filepath.Join(t.TempDir(), "child.log")
	cmd, port := childproc.Start(t, "TestChildLowFDEcho", "CHIRP_CHILD_LOWFD", logPath)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var existing []net.Conn
	for i := range 3 {
		c := dialTCP(t, addr)
		roundTrip(t, c, []byte("before "+strconv.Itoa(i)))
		existing = append(existing, c)
	}
	// The kernel completes these handshakes into the accept queue (the
	// backlog is 100); the child can accept only until it runs out of
	// descriptors. Dials beyond the queue time out: the storm is full.
	var storm []net.Conn
	t0 := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 3 * childFDLimit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				mu.Lock()
				storm = append(storm, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range storm {
			c.Close()
		}
	}()
	t.Logf("%v: %d storm connections", time.Since(t0), len(storm))
	for i, c := range existing {
		roundTrip(t, c, []byte("right after "+strconv.Itoa(i)))
	}
	if len(storm) < childFDLimit {
		t.Fatalf("only %d storm connections, want at least %d", len(storm), childFDLimit)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readFile(t, logPath), "level=WARN") {
		if time.Now().After(deadline) {
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
			lim, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", cmd.Process.Pid))
			t.Fatalf("no Warn log about accept errors (%d storm, child has %d fds)\n%s; log:\n%s", len(storm), len(fds), lim, readFile(t, logPath))
		}
		for i, c := range existing { // keeps working during the storm
			roundTrip(t, c, []byte("during "+strconv.Itoa(i)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := readFile(t, logPath); !strings.Contains(l, "accept failed") || !strings.Contains(l, "too many open files") {
		t.Errorf("Warn log does not name the accept error:\n%s", l)
	}
	for i, c := range existing {
		roundTrip(t, c, []byte("still during "+strconv.Itoa(i)))
	}
	t.Logf("%v: warned", time.Since(t0))
	for _, c := range storm {
		c.Close()
	}
	storm = nil
	// The child accepts the queued (now closed) connections, closes them,
	// and then takes new ones.
	deadline = time.Now().Add(20 * time.Second)
	for fresh := 0; fresh < 5; {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			msg := []byte("after " + strconv.Itoa(fresh))
			_, err = c.Write(msg)
			if err == nil {
				_, err = readN(c, len(msg))
			}
			c.Close()
			if err == nil {
				fresh++
				continue
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new connection served after the storm: %v; log:\n%s", err, readFile(t, logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%v: served fresh connections", time.Since(t0))
	for i, c := range existing {
		roundTrip(t, c, []byte("after "+strconv.Itoa(i)))
	}
	if l := readFile(t, logPath); strings.Contains(l, "LOOP ENDED") {
		t.Errorf("the child's loop ended:\n%s", l)
	}
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func readN(c net.Conn, n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}
