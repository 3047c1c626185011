package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// runCapture runs the command line in this process and returns exit
// status, stdout, stderr.
func runCapture(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, stdio{in: strings.NewReader(stdin), out: &out, err: &errOut})
	return code, out.String(), errOut.String()
}

func TestHelpListsEverySubcommand(t *testing.T) {
	code, _, stderr := runCapture(t, "", "-h")
	if code != 0 {
		t.Errorf("chirp -h exited %d, want 0", code)
	}
	if len(commands) == 0 {
		t.Fatal("no commands registered")
	}
	for _, c := range commands {
		if !strings.Contains(stderr, c.name+" ") || !strings.Contains(stderr, c.summary) {
			t.Errorf("chirp -h does not list %q with its summary:\n%s", c.name, stderr)
		}
	}
}

func TestBareChirpShowsTheCommands(t *testing.T) {
	code, stdout, stderr := runCapture(t, "")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: chirp COMMAND") {
		t.Errorf("chirp: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout, stderr)
	}
}

func TestRegisterKeepsTableSorted(t *testing.T) {
	saved := commands
	defer func() { commands = saved }()
	commands = nil
	noop := func(*flag.FlagSet) func(stdio, []string) error { return nil }
	register(&command{name: "send", setup: noop})
	register(&command{name: "bench", setup: noop})
	register(&command{name: "echo", setup: noop})
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	if got := strings.Join(names, " "); got != "bench echo send" {
		t.Fatalf("table order %q, want bench echo send", got)
	}
}
