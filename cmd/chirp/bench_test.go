package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gochirp/chirp/perf"
)

// TestBinary runs the chirp binary's processes against each other as a
// user would: echo and send, signals, bench with child peers.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	exe := chirpBin

	t.Run("echo and send", func(t *testing.T) {
		for _, async := range []bool{false, true} {
			mode := []string{"-bind", "127.0.0.1", "-timeout", "2s"}
			if async {
				mode = append(mode, "-async")
			}
			echo, port := startChild(t, exe, append([]string{"echo", "-port", "0"}, mode...)...)
			dst := fmt.Sprintf("127.0.0.1:%d", port)
			args := append(append([]string{"send"}, mode...), "-n", "50", "-concurrency", "8", "-size", "100", "-echo", dst)
			out, err := runChild(t, exe, "", args...)
			if err != nil || !strings.Contains(out, "50 ok, 0 failed") {
				t.Errorf("chirp %q: %v\n%s", args, err, out)
			}
			args = append(append([]string{"send"}, mode...), "-echo", dst, "-") // one message, data from stdin
			out, err = runChild(t, exe, "from stdin", args...)
			if err != nil || !strings.Contains(out, "1 ok, 0 failed") || !strings.Contains(out, "10 data bytes") {
				t.Errorf("chirp %q < 'from stdin': %v\n%s", args, err, out)
			}
			stopChild(t, echo, syscall.SIGTERM)
		}
	})

	t.Run("send exits non-zero on failure", func(t *testing.T) {
		out, err := runChild(t, exe, "", "send", "-bind", "127.0.0.1", "-timeout", "200ms", "127.0.0.1:1", "x")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "0 ok, 1 failed") {
			t.Errorf("send to a closed port: %v\n%s", err, out)
		}
	})

	t.Run("TLS: echo, send and bench against a TLS target", func(t *testing.T) {
		pki := filepath.Join(dir, "pki")
		if out, err := runChild(t, exe, "", "certs", "-dir", pki); err != nil {
			t.Fatalf("certs: %v\n%s", err, out)
		}
		node1, node2 := filepath.Join(pki, "node1.pem"), filepath.Join(pki, "node2.pem")
		tlsMode := []string{"-bind", "127.0.0.1", "-timeout", "2s", "-async", "-always-encrypt"}
		echo, port := startChild(t, exe, append([]string{"echo", "-port", "0", "-tls-chain", node1}, tlsMode...)...)
		dst := fmt.Sprintf("127.0.0.1:%d", port)
		args := append(append([]string{"send", "-tls-chain", node2}, tlsMode...), "-n", "20", "-concurrency", "4", "-size", "1000", "-echo", dst)
		if out, err := runChild(t, exe, "", args...); err != nil || !strings.Contains(out, "20 ok, 0 failed") {
			t.Errorf("chirp %q: %v\n%s", args, err, out)
		}
		args = []string{"bench", "-target", dst, "-target-mode", "async", "-tls-chain", node2, "-runs", "1", "-run-time", "30ms",
			"-warmup", "10ms", "-sizes", "5", "-inflight", "4"}
		out, err := runChild(t, exe, "", args...)
		if err != nil {
			t.Errorf("chirp %q: %v\n%s", args, err, out)
		}
		rows := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if name, rest, ok := strings.Cut(line, "  "); ok && strings.HasPrefix(name, "tls ") && strings.Contains(name, "pooled4") {
				rows[strings.TrimSpace(name)] = strings.TrimSpace(rest)
			}
		}
		if len(rows) != 2 || !strings.HasPrefix(rows["tls sync pooled4 5B"], "skipped") ||
			!strings.Contains(rows["tls async pooled4 5B"], "x") {
			t.Errorf("chirp %q: want only TLS rows, the sync one skipped; got %q\n%s", args, rows, out)
		}
		stopChild(t, echo, syscall.SIGTERM)
	})

	t.Run("echo stops on SIGINT", func(t *testing.T) {
		echo, _ := startChild(t, exe, "echo", "-port", "0", "-bind", "127.0.0.1")
		stopChild(t, echo, os.Interrupt)
	})

	t.Run("bench quick", func(t *testing.T) {
		jsonFile, chart := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.svg")
		out, err := runChild(t, exe, "", "bench", "-quick", "-runs", "1", "-run-time", "30ms", "-warmup", "10ms",
			"-sizes", "5", "-inflight", "1,4", "-json", jsonFile, "-chart", chart, "-busy-poll", "20us",
			"-placement", "same")
		if err != nil {
			t.Fatalf("bench: %v\n%s", err, out)
		}
		for _, want := range []string{"tcp single 5B", "tcp pooled4 5B", "sync single 5B", "async pooled4 5B", "vs tcp", "spread", "child process",
			"tls async pooled4 5B", "vs plain", "-always-encrypt", "handlers: inline",
			"relay sync single 5B", "relay async pooled16 5B", "vs direct", "(chirp relay -port 0",
			"busy poll: 20µs", "-busy-poll=20µs -tls-chain", "-busy-poll=20µs -to", "placement: same (this process and its peers on CPU"} {
			if !strings.Contains(out, want) {
				t.Errorf("bench output lacks %q:\n%s", want, out)
			}
		}
		var rep perf.Report
		if b, err := os.ReadFile(jsonFile); err != nil || json.Unmarshal(b, &rep) != nil {
			t.Fatalf("JSON report: %v\n%s", err, b)
		}
		// chan, 3 tcp (pooled16 for the async relay), 4 plain, 4 TLS, 2 relay
		if len(rep.Results) != 14 || rep.Failed() != 0 || rep.Style != perf.StyleInline || rep.BusyPoll != 20*time.Microsecond ||
			!strings.HasPrefix(rep.Placement, "same") {
			t.Errorf("JSON report: %+v", rep)
		}
		for _, r := range rep.Results {
			if r.TLS && r.VsPlain <= 0 {
				t.Errorf("%s: no ratio to plaintext", r.Name)
			}
			if r.Name == "relay sync single 5B" && r.VsDirect <= 0 { // its twin was measured
				t.Errorf("%s: no ratio to direct", r.Name)
			}
		}
		b, err := os.ReadFile(chart)
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, new(struct{})); err != nil {
			t.Errorf("chart is not XML: %v", err)
		}
	})
}

// startChild runs the binary, waits for "listening on PORT" and kills the
// child on cleanup.
func startChild(t *testing.T, exe string, args ...string) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ports := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var port int
			if _, err := fmt.Sscanf(sc.Text(), perf.Ready+"%d", &port); err == nil {
				ports <- port
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case port := <-ports:
		return cmd, port
	case <-time.After(20 * time.Second):
		t.Fatalf("chirp %q did not print %q", args, perf.Ready+"PORT")
	}
	return nil, 0
}

// stopChild signals the child and wants it to exit 0 soon.
func stopChild(t *testing.T, cmd *exec.Cmd, sig os.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%v after %v: %v", cmd.Args, sig, err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("%v did not exit within 10s of %v", cmd.Args, sig)
	}
}

// runChild runs the binary to completion (bounded) and returns its output.
func runChild(t *testing.T, exe, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}
