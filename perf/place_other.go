//go:build !linux

package perf

import (
	"errors"
	"os/exec"
)

var errNoPinning = errors.New("pinning to CPUs needs Linux")

func allowedCPUs() ([]int, error) { return nil, errNoPinning }

func pinThisProcess(int) error { return errNoPinning }

func startOn(cmd *exec.Cmd, cpu int) error {
	if cpu >= 0 {
		return errNoPinning
	}
	return cmd.Start()
}
