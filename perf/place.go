package perf

import (
	"context"
	"fmt"
	"io"
)

// Placement modes: where the harness and the peer processes it starts run.
const (
	// PlaceFree leaves it to the kernel (the default).
	PlaceFree = "free"
	// PlaceSame pins the harness and its peers to one CPU.
	PlaceSame = "same"
	// PlaceApart pins the harness to one CPU and its peers to another.
	PlaceApart = "apart"
)

// Placement is where the harness and the peers it starts run, as set by
// Place. On a virtual machine, a pass with one message in flight costs
// mostly the wake-up of the process that waits for it: cheap when both
// share a CPU, dear when the peer's CPU has to be woken from idle. Left
// free, the kernel moves between the two from one second to the next, so
// single-in-flight figures vary by a factor of two to four; pinned, they
// are steadier and can be compared with another implementation pinned
// alike.
type Placement struct {
	// Mode is PlaceFree, PlaceSame or PlaceApart.
	Mode string
	// Harness and Peers are the CPUs, or -1 with PlaceFree.
	Harness, Peers int
}

// Place pins every thread of this process to the harness's CPU (the first
// CPU this process may run on) and returns the placement, whose
// StartProcess starts peers on the peers' CPU (the second one with
// PlaceApart). PlaceFree ("" too) changes nothing. PlaceApart needs two
// CPUs, and pinning needs Linux.
func Place(mode string) (*Placement, error) {
	switch mode {
	case "", PlaceFree:
		return &Placement{Mode: PlaceFree, Harness: -1, Peers: -1}, nil
	case PlaceSame, PlaceApart:
	default:
		return nil, fmt.Errorf("placement %q: want %s, %s or %s", mode, PlaceFree, PlaceSame, PlaceApart)
	}
	cpus, err := allowedCPUs()
	if err != nil {
		return nil, fmt.Errorf("placement %s: %w", mode, err)
	}
	p := &Placement{Mode: mode, Harness: cpus[0], Peers: cpus[0]}
	if mode == PlaceApart {
		if len(cpus) < 2 {
			return nil, fmt.Errorf("placement %s needs two CPUs; this process may run on CPU %d only", mode, cpus[0])
		}
		p.Peers = cpus[1]
	}
	if err := pinThisProcess(p.Harness); err != nil {
		return nil, fmt.Errorf("placement %s: %w", mode, err)
	}
	return p, nil
}

// String describes p for a report.
func (p *Placement) String() string {
	switch {
	case p == nil || p.Mode == PlaceFree:
		return "free (the kernel places the processes)"
	case p.Mode == PlaceSame:
		return fmt.Sprintf("same (this process and its peers on CPU %d)", p.Harness)
	default:
		return fmt.Sprintf("apart (this process on CPU %d, its peers on CPU %d)", p.Harness, p.Peers)
	}
}

// StartProcess is the package's StartProcess with the child pinned to the
// peers' CPU (a nil or free p pins nothing).
func (p *Placement) StartProcess(ctx context.Context, host string, log io.Writer, name string, args ...string) (*Peer, error) {
	cpu := -1
	if p != nil && p.Mode != PlaceFree {
		cpu = p.Peers
	}
	return startProcess(ctx, cpu, host, log, name, args...)
}
