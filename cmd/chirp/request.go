package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/gochirp/chirp/node"
)

func init() {
	register(&command{
		name:    "request",
		args:    "[flags] HOST:PORT DATA|-",
		summary: "send one message and print the answer's data (a reply: the message sent back, as an echo node does)",
		notes: "\nDATA is the message's data; - reads it from standard input. The answer's data is printed\n" +
			"with a newline; -json prints the whole answer as listen -print json does.\n",
		env:   true,
		setup: setupRequest,
	})
}

func setupRequest(fs *flag.FlagSet) func(stdio, []string) error {
	var nf nodeFlags
	nf.register(fs, nodeUse{timeout: "how long to wait for the answer; also the send's timeout"})
	header := fs.String("header", "", "message header (text)")
	asJSON := fs.Bool("json", false, "print the whole answer as one JSON object: remote, identities, serial, header, data")
	return func(s stdio, args []string) error {
		if len(args) != 2 {
			return usageError{"want HOST:PORT and DATA (- reads standard input)"}
		}
		data, err := readData(s, args[1])
		if err != nil {
			return err
		}
		ctx, stop := untilSignal()
		defer stop()
		return runRequest(ctx, s, &nf, args[0], []byte(*header), data, *asJSON)
	}
}

// runRequest sends one message to dst and prints the answer.
func runRequest(ctx context.Context, s stdio, nf *nodeFlags, dst string, header, data []byte, asJSON bool) error {
	cfg, err := nf.config(s.err)
	if err != nil {
		return err
	}
	to, err := resolve(ctx, dst)
	if err != nil {
		return err
	}
	n, err := nf.start(cfg) // no Handler: anything but the answer is released at once
	if err != nil {
		return err
	}
	defer closeNode(n)
	m := &node.Message{Addr: to, Data: data}
	if len(header) > 0 {
		m.Header = header
	}
	m.NewIdentity()
	ctx, cancel := context.WithTimeout(ctx, nf.timeout)
	defer cancel()
	a, err := n.Request(ctx, m)
	if err != nil {
		return sendError(err, dst, nf.timeout)
	}
	if asJSON {
		printJSON(s.out, a)
		return nil
	}
	s.out.Write(a.Data)
	_, err = fmt.Fprintln(s.out)
	return err
}
