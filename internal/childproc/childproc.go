// Package childproc runs a test binary again as a child process that
// serves something on a port, for tests that need a peer in another
// process. The child runs one named test function, selected by an
// environment variable, and announces its port with Announce.
package childproc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Announce is called by the child once it listens.
func Announce(port int) { fmt.Println("PORT", port) }

// Serve is called by the child once it listens: it announces port and
// waits until the parent stops it (SIGTERM), done is closed (nil: never) or
// max passed. It reports whether done was closed.
func Serve(port int, max time.Duration, done <-chan struct{}) bool {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	defer signal.Stop(sig)
	Announce(port)
	select {
	case <-sig:
	case <-done:
		return true
	case <-time.After(max):
	}
	return false
}

// Fail is called by the child when it cannot start.
func Fail(err error) {
	fmt.Println("ERR", err)
	os.Exit(1)
}

// Start runs the test function named test of this binary in a child
// process with the environment variable env set to value, waits (at most
// 20 s) for its port and stops it (SIGTERM, then waits) when tb ends.
func Start(tb testing.TB, test, env, value string) (*exec.Cmd, int) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.bench=^$")
	cmd.Env = append(os.Environ(), env+"="+value)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "PORT ") || strings.HasPrefix(s.Text(), "ERR ") {
				lines <- s.Text()
				break
			}
		}
		for s.Scan() { // keep the pipe drained
		}
	}()
	select {
	case l := <-lines:
		port, err := strconv.Atoi(strings.TrimPrefix(l, "PORT "))
		if err != nil {
			tb.Fatalf("child %s: %s", test, l)
		}
		return cmd, port
	case <-time.After(20 * time.Second):
		tb.Fatalf("child %s did not start", test)
	}
	return nil, 0
}

// Freeze stops cmd's process with SIGSTOP and waits until every one of its
// threads is stopped: kill returns before a thread that is running stops,
// and such a thread may still read, answer and acknowledge a message
// meanwhile. Linux only (it reads /proc); elsewhere it only signals.
func Freeze(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	dir := fmt.Sprintf("/proc/%d/task", cmd.Process.Pid)
	if _, err := os.Stat(dir); err != nil {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if allStopped(dir) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("process %d did not stop within 5s of SIGSTOP", cmd.Process.Pid)
		}
	}
}

// allStopped reports whether every thread under dir (/proc/PID/task) is in
// state T (stopped).
func allStopped(dir string) bool {
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
		if err != nil {
			return false
		}
		// pid (comm) state ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}
