package perf

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// threadCPUs lists the distinct Cpus_allowed_list of pid's threads.
func threadCPUs(pid int) ([]string, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return nil, fmt.Errorf("threads of %d: %v", pid, err)
	}
	var lists []string
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && !slices.Contains(lists, strings.TrimSpace(v)) {
				lists = append(lists, strings.TrimSpace(v))
			}
		}
	}
	slices.Sort(lists)
	return lists, nil
}

// placeChild is the child process of TestPlace (PERF_TEST_CHILD=place,
// PERF_TEST_PLACE=mode): it places itself, starts a TCP echo peer with the
// placement, and prints the CPUs of its own threads and of the peer's.
func placeChild() {
	if os.Getenv("PERF_TEST_ONE_CPU") != "" { // as under taskset -c N
		cpus, err := allowedCPUs()
		if err == nil {
			err = pinThisProcess(cpus[len(cpus)-1])
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	}
	p, err := Place(os.Getenv("PERF_TEST_PLACE"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Setenv("PERF_TEST_CHILD", "tcp-echo")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	peer, err := p.StartProcess(ctx, "127.0.0.1", nil, exe)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer peer.Close()
	var pid int
	if _, err := fmt.Sscanf(peer.Desc, "child process %d", &pid); err != nil {
		fmt.Println("error: no pid in", peer.Desc)
		return
	}
	time.Sleep(50 * time.Millisecond) // let both runtimes start more threads
	own, err1 := threadCPUs(os.Getpid())
	theirs, err2 := threadCPUs(pid)
	if err1 != nil || err2 != nil {
		fmt.Println("error:", err1, err2)
		return
	}
	fmt.Printf("placement %s\nharness %s\npeer %s\n", p, strings.Join(own, " "), strings.Join(theirs, " "))
}

// TestPlace runs placeChild in a child process for each mode, so that this
// test process is never pinned, and checks where its threads and its
// peer's ended up.
func TestPlace(t *testing.T) {
	cpus, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	all, err := threadCPUs(os.Getpid())
	if err != nil || len(all) != 1 {
		t.Fatalf("this test process's threads: %v, %v", all, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	first := fmt.Sprint(cpus[0])
	for _, tc := range []struct{ mode, harness, peer string }{
		{PlaceFree, all[0], all[0]},
		{PlaceSame, first, first},
		{PlaceApart, first, "second"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			if tc.mode == PlaceApart {
				if len(cpus) < 2 {
					t.Skipf("this process may run on CPU %d only; apart needs two", cpus[0])
				}
				tc.peer = fmt.Sprint(cpus[1])
			}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "PERF_TEST_CHILD=place", "PERF_TEST_PLACE="+tc.mode)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			want := fmt.Sprintf("harness %s\npeer %s\n", tc.harness, tc.peer)
			if !strings.Contains(string(out), want) {
				t.Errorf("child printed\n%s\nwant\n%s", out, want)
			}
		})
	}
	t.Run("apart on one CPU", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "PERF_TEST_CHILD=place", "PERF_TEST_PLACE=apart", "PERF_TEST_ONE_CPU=1")
		out, err := cmd.CombinedOutput()
		want := fmt.Sprintf("placement apart needs two CPUs; this process may run on CPU %d only", cpus[len(cpus)-1])
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("child: %v\n%s\nwant %q", err, out, want)
		}
	})
	if _, err := Place("elsewhere"); err == nil || !strings.Contains(err.Error(), "want free, same or apart") {
		t.Errorf("Place(elsewhere) = %v", err)
	}
	if got := (*Placement)(nil).String(); !strings.HasPrefix(got, "free") {
		t.Errorf("nil placement is %q", got)
	}
}
