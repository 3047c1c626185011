package reactor

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// testLimit is how long one reactor test may run. A hang then ends the
// test binary within this time, with every goroutine's stack, instead of
// at go test's -timeout for the whole package.
const testLimit = 90 * time.Second

// guard makes t fail fast if it hangs: after testLimit it prints all
// goroutine stacks and panics, which ends the test binary.
func guard(t testing.TB) {
	t.Helper()
	timer := time.AfterFunc(testLimit, func() {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		fmt.Fprintf(os.Stderr, "%s still running after %v; all goroutines:\n%s\n", t.Name(), testLimit, buf)
		panic(t.Name() + " hung")
	})
	t.Cleanup(func() { timer.Stop() })
}
