//go:build !linux

package perf

import "syscall"

// childAttr: without Linux's parent-death signal, peers are killed by
// Peer.Close and by the context only.
func childAttr() *syscall.SysProcAttr { return nil }
