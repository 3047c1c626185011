package reactor

import (
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/panjf2000/gnet/v2/pkg/netpoll"
)

// TestBuiltWithPatchedGnet: builds of this module use the patched gnet in
// third_party/gnet, whose poller does not call runtime.Gosched before a
// blocking epoll_wait (see third_party/gnet/CHIRP.md). Dropping the replace
// directive in go.mod, or the patch, brings back a thread hand-off per idle
// poll; this catches both.
func TestBuiltWithPatchedGnet(t *testing.T) {
	guard(t)
	fn := runtime.FuncForPC(reflect.ValueOf((*netpoll.Poller).Polling).Pointer())
	file, _ := fn.FileLine(fn.Entry())
	if !strings.Contains(file, "/third_party/gnet/pkg/netpoll/") {
		t.Fatalf("gnet's poller is compiled from %s, not from third_party/gnet", file)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*runtime\.Gosched\(\)`).Match(src) {
		t.Errorf("%s calls runtime.Gosched: the patch is missing", file)
	}
}
