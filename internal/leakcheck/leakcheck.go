// Package leakcheck makes test binaries fail when goroutines outlive their
// tests. It knows the goroutines that legitimately live as long as the
// process: those of gnet's shared worker pool (ants).
package leakcheck

import (
	"testing"

	"go.uber.org/goleak"
)

// Options are the goleak options every package of this module uses.
func Options() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"),
		goleak.IgnoreAnyFunction("github.com/panjf2000/ants/v2.(*goWorker).run"),
	}
}

// VerifyTestMain runs the tests and fails if goroutines are left over.
func VerifyTestMain(m *testing.M) { goleak.VerifyTestMain(m, Options()...) }
