// Package heap measures the Go heap for tests that bound memory growth.
package heap

import "runtime"

// InUse collects garbage and returns the bytes in in-use heap spans.
func InUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
