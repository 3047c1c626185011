package perf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// allowedCPUs lists the CPUs this process may run on, lowest first.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	cpus := setCPUs(set)
	if len(cpus) == 0 {
		return nil, errors.New("sched_getaffinity: no CPU")
	}
	return cpus, nil
}

// pinThisProcess restricts every thread of this process to cpu. A thread
// inherits the mask of the thread that creates it, so once all of them
// are pinned, so are those to come; the passes repeat until one finds
// every thread pinned already.
func pinThisProcess(cpu int) error {
	var want unix.CPUSet
	want.Set(cpu)
	for pass := 0; pass < 10; pass++ {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			var cur unix.CPUSet
			if unix.SchedGetaffinity(tid, &cur) != nil || cur == want {
				continue // ended, or pinned
			}
			if err := unix.SchedSetaffinity(tid, &want); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("sched_setaffinity of thread %d to CPU %d: %w", tid, cpu, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("threads kept appearing unpinned")
}

// startOn starts cmd with the child restricted to cpu (-1: as this
// process). The child inherits the mask of the thread that forks it, so
// that thread takes the child's mask for the fork; threads the runtime
// made meanwhile are pinned back afterwards.
func startOn(cmd *exec.Cmd, cpu int) error {
	if cpu < 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var own, child unix.CPUSet
	if err := unix.SchedGetaffinity(0, &own); err != nil {
		return fmt.Errorf("sched_getaffinity: %w", err)
	}
	child.Set(cpu)
	if err := unix.SchedSetaffinity(0, &child); err != nil {
		return fmt.Errorf("sched_setaffinity to CPU %d for a peer: %w", cpu, err)
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &own); rerr != nil && err == nil {
		err = fmt.Errorf("restoring this thread's CPUs: %w", rerr)
	}
	if cpus := setCPUs(own); len(cpus) == 1 { // a pinned harness
		if perr := pinThisProcess(cpus[0]); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// setCPUs lists the CPUs in set, lowest first.
func setCPUs(set unix.CPUSet) []int {
	var cpus []int
	for i := 0; len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}
