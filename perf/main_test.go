package perf

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
)

func TestMain(m *testing.M) {
	switch os.Getenv("PERF_TEST_CHILD") {
	case "":
	case "tcp-echo":
		// The child process of TestStartProcess: a TCP echo that announces
		// its port as chirp's echo does, and lives until killed.
		e, err := ListenTCPEcho("127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("some noise first\n%s%d\n", Ready, e.Port())
		time.Sleep(time.Minute)
		os.Exit(0)
	case "place":
		placeChild()
		os.Exit(0)
	case "fail":
		fmt.Fprintln(os.Stderr, "cannot listen: the reason")
		os.Exit(3)
	}
	leakcheck.VerifyTestMain(m)
}
