package reactor

import (
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/childproc"
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
			childproc.Fail(err)
		}
		defer r.Close()
		port = r.Port()
	case "netconn":
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			childproc.Fail(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		go serveNetEcho(ln, new(sync.WaitGroup))
	}
	childproc.Serve(port, 5*time.Minute, nil)
	os.Exit(0)
}

func childEcho(b *testing.B, kind string) string {
	_, port := childproc.Start(b, "TestChildEchoServer", "CHIRP_CHILD_ECHO", kind)
	return "127.0.0.1:" + strconv.Itoa(port)
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
