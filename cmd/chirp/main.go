// Command chirp is the command-line tool of chirp for Go. Each subcommand
// lives in its own file and registers itself in the command table; run
// "chirp -h" for the list.
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
	// setup declares the command's flags on fs and returns the function that
	// runs the command with the arguments left after the flags.
	setup func(fs *flag.FlagSet) func(s stdio, args []string) error
}

// stdio is what a command reads from and writes to, so tests can run it.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// commands is the command table; files add to it with register.
var commands []*command

func register(c *command) {
	commands = append(commands, c)
	slices.SortFunc(commands, func(a, b *command) int { return strings.Compare(a.name, b.name) })
}

// usageError is a command line a command cannot make sense of: exit status 2
// and the usage, as for bad flags.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

// run runs the command line args and returns the exit status: 0 done (also
// after -h), 1 the command failed, 2 the command line was wrong.
func run(args []string, s stdio) int {
	top := flag.NewFlagSet("chirp", flag.ContinueOnError)
	top.SetOutput(s.err)
	top.Usage = func() {
		fmt.Fprintf(s.err, "usage: chirp COMMAND [flags] [args]\n\ncommands:\n")
		for _, c := range commands {
			fmt.Fprintf(s.err, "  %-10s %s\n", c.name, c.summary)
		}
		fmt.Fprintf(s.err, "\nRun 'chirp COMMAND -h' for the flags of a command.\n")
	}
	if err := top.Parse(args); err != nil {
		return exitStatus(err)
	}
	if top.NArg() == 0 {
		top.Usage()
		return 2
	}
	i := slices.IndexFunc(commands, func(c *command) bool { return c.name == top.Arg(0) })
	if i < 0 {
		fmt.Fprintf(s.err, "chirp: unknown command %q\n", top.Arg(0))
		top.Usage()
		return 2
	}
	c := commands[i]

	fs := flag.NewFlagSet("chirp "+c.name, flag.ContinueOnError)
	fs.SetOutput(s.err)
	fs.Usage = func() {
		fmt.Fprintf(s.err, "usage: chirp %s %s\n\n%s\n", c.name, c.args, c.summary)
		fs.PrintDefaults()
	}
	exec := c.setup(fs)
	if err := fs.Parse(top.Args()[1:]); err != nil {
		return exitStatus(err)
	}
	err := exec(s, fs.Args())
	if err == nil {
		return 0
	}
	fmt.Fprintf(s.err, "chirp %s: %v\n", c.name, err)
	if errors.As(err, new(usageError)) {
		fs.Usage()
		return 2
	}
	return 1
}

// exitStatus maps a flag parse error to the status the flag package's
// ExitOnError would use.
func exitStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
