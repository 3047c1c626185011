package perf

import "syscall"

// childAttr makes the kernel kill a peer process when this process dies,
// so no echo node outlives an interrupted benchmark.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
