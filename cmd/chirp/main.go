// Command chirp is the command-line tool of chirp for Go. Each subcommand
// lives in its own file and registers itself in the command table; run
// "chirp help" for the list.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// command is one subcommand of chirp.
type command struct {
	name    string
	args    string // synopsis of the arguments after the name, for usage
	summary string // one line for the command list
	notes   string // printed after the flags by -h, if any
	// env: the command takes flag defaults from the environment (envDefaults).
	env bool
	// setup declares the command's flags on fs and returns the function that
	// runs the command with the arguments left after the flags.
	setup func(fs *flag.FlagSet) func(s stdio, args []string) error
}

// stdio is what a command reads from and writes to, so tests can run it.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	// errTTY: err is a terminal, where progress lines go (and only there).
	errTTY bool
}

// commands is the command table; files add to it with register.
var commands []*command

func register(c *command) {
	commands = append(commands, c)
	slices.SortFunc(commands, func(a, b *command) int { return strings.Compare(a.name, b.name) })
}

func lookup(name string) *command {
	i := slices.IndexFunc(commands, func(c *command) bool { return c.name == name })
	if i < 0 {
		return nil
	}
	return commands[i]
}

// usageError is a command line a command cannot make sense of: exit status
// 2, the problem on one line and where the usage is.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// envDefaults are the environment variables that set flag defaults of the
// commands that run a node; a flag on the command line overrides its variable.
var envDefaults = []struct{ name, flag, what string }{
	{"CHIRP_TLS_CHAIN", "tls-chain", "the node's TLS credentials file (see chirp certs)"},
	{"CHIRP_TIMEOUT", "timeout", "the send timeout, e.g. 2s"},
}

func main() {
	os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, errTTY: isTerminal(os.Stderr)}))
}

// run runs the command line args and returns the exit status: 0 done (also
// after -h and help), 1 the command failed, 2 the command line was wrong.
func run(args []string, s stdio) int {
	if len(args) == 0 {
		topUsage(s.err)
		return 2
	}
	name := args[0]
	switch {
	case name == "-h" || name == "-help" || name == "--help":
		topUsage(s.err)
		return 0
	case name == "help":
		return help(args[1:], s)
	case strings.HasPrefix(name, "-"):
		return usageFail(s, "chirp", fmt.Sprintf("flag %s before a command", name), "chirp help")
	}
	c := lookup(name)
	if c == nil {
		return usageFail(s, "chirp", fmt.Sprintf("unknown command %q", name), "chirp help")
	}
	fs := flag.NewFlagSet("chirp "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints the flag package's errors itself, on one line
	fs.Usage = func() {}
	exec := c.setup(fs)
	if c.env {
		if err := applyEnv(fs); err != nil {
			return usageFail(s, "chirp "+c.name, err.Error(), "chirp "+c.name+" -h")
		}
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(s.err, c, fs)
			return 0
		}
		return usageFail(s, "chirp "+c.name, err.Error(), "chirp "+c.name+" -h")
	}
	err := exec(s, fs.Args())
	if err == nil {
		return 0
	}
	if errors.As(err, new(usageError)) {
		return usageFail(s, "chirp "+c.name, err.Error(), "chirp "+c.name+" -h")
	}
	fmt.Fprintf(s.err, "chirp %s: %s\n", c.name, oneLine(err.Error()))
	return 1
}

// usageFail prints a usage error as the problem on one line and where the
// usage is, and returns exit status 2.
func usageFail(s stdio, who, problem, helpCmd string) int {
	fmt.Fprintf(s.err, "%s: %s\nrun '%s' for usage\n", who, oneLine(problem), helpCmd)
	return 2
}

// oneLine keeps an error on the one line a CLI error gets.
func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

// help is "chirp help [COMMAND]": the usage on stdout, as it was asked for.
func help(args []string, s stdio) int {
	switch len(args) {
	case 0:
		topUsage(s.out)
		return 0
	case 1:
		if args[0] == "help" {
			topUsage(s.out)
			return 0
		}
		c := lookup(args[0])
		if c == nil {
			return usageFail(s, "chirp help", fmt.Sprintf("unknown command %q", args[0]), "chirp help")
		}
		fs := flag.NewFlagSet("chirp "+c.name, flag.ContinueOnError)
		c.setup(fs)
		commandUsage(s.out, c, fs)
		return 0
	}
	return usageFail(s, "chirp help", "want at most one COMMAND", "chirp help")
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: chirp COMMAND [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "help", "show the commands, or with COMMAND its flags")
	fmt.Fprintf(w, "\nRun 'chirp help COMMAND' or 'chirp COMMAND -h' for the flags of a command.\n")
	envUsage(w)
	fmt.Fprintf(w, "\nExit status: 0 done, 1 the command failed, 2 the command line was wrong.\n")
}

// envUsage documents envDefaults.
func envUsage(w io.Writer) {
	var users []string
	for _, c := range commands {
		if c.env {
			users = append(users, c.name)
		}
	}
	fmt.Fprintf(w, "\nenvironment (flag defaults of %s; a flag overrides its variable):\n", strings.Join(users, ", "))
	for _, e := range envDefaults {
		fmt.Fprintf(w, "  %-16s -%s: %s\n", e.name, e.flag, e.what)
	}
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: chirp %s %s\n\n%s\n\nflags:\n", c.name, c.args, c.summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if c.notes != "" {
		fmt.Fprint(w, c.notes)
	}
	if c.env {
		envUsage(w)
	}
}

// applyEnv sets the defaults of fs's flags from envDefaults; parsing the
// command line afterwards overrides them.
func applyEnv(fs *flag.FlagSet) error {
	for _, e := range envDefaults {
		v, ok := os.LookupEnv(e.name)
		if !ok || v == "" || fs.Lookup(e.flag) == nil {
			continue
		}
		if err := fs.Set(e.flag, v); err != nil {
			return fmt.Errorf("%s=%q is not a valid -%s", e.name, v, e.flag)
		}
	}
	return nil
}
