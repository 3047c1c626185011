package reactor

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestChildEchoServer is not a test: it is the echo server of
// BenchmarkEchoCrossProcess, run in a child process. CHIRP_CHILD_ECHO
// selects the implementation: "reactor" or "netconn".
func TestChildEchoServer(t *testing.T) {
	kind := os.Getenv("CHIRP_CHILD_ECHO")
	if kind == "" {
		return
	}
	var port int
	switch kind {
	case "reactor":
		r, err := Start(Config{ListenV4: "127.0.0.1", Handler: echoHandler()})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		defer r.Close()
		port = r.Port()
	case "netconn":
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		go serveNetEcho(ln, new(sync.WaitGroup))
	}
	fmt.Println("PORT", port)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(5 * time.Minute):
	}
	os.Exit(0)
}

func childEcho(b *testing.B, kind string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildEchoServer$", "-test.count=1", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "CHIRP_CHILD_ECHO="+kind)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	s := bufio.NewScanner(out)
	for s.Scan() {
		if p, ok := strings.CutPrefix(s.Text(), "PORT "); ok {
			if _, err := strconv.Atoi(p); err != nil {
				b.Fatal(s.Text())
			}
			return "127.0.0.1:" + p
		}
		if strings.HasPrefix(s.Text(), "ERR") {
			b.Fatal(s.Text())
		}
	}
	b.Fatal("child echo server did not start")
	return ""
}

// BenchmarkEchoCrossProcess is BenchmarkEcho with the server in a child
// process, as a chirp node serves other processes: the reactor and the
// goroutine-per-connection server compared without sharing a scheduler
// with the client.
func BenchmarkEchoCrossProcess(b *testing.B) {
	for _, conns := range []int{1, 16} {
		for _, size := range []int{64, 16 << 10} {
			name := "conns=" + strconv.Itoa(conns) + "/size=" + strconv.Itoa(size)
			for _, kind := range []string{"reactor", "netconn"} {
				b.Run(kind+"/"+name, func(b *testing.B) {
					benchEcho(b, childEcho(b, kind), conns, size)
				})
			}
		}
	}
}
