package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/perf"
)

func init() {
	register(&command{
		name:    "listen",
		args:    "[flags]",
		summary: "run a node and print every message it receives",
		notes:   listenNotes,
		env:     true,
		setup:   setupListen,
	})
}

const listenNotes = `
-print text writes one line per message: origin, identities, serial, sizes,
header and data (quoted text, or hex). -print raw writes each message's data
and a newline; with -0 each message's data is preceded by its length, 4 bytes
big-endian, and nothing is added: binary-safe. -print json writes JSON Lines,
one object per message:
  {"remote":"127.0.0.1:3000","node":"<hex>","identity":"<hex>","serial":7,
   "header":"","header_encoding":"utf-8","data":"hello","data_encoding":"utf-8"}
where header and data are the bytes as a string when they are valid UTF-8
("utf-8"), base64 otherwise ("base64"). stdout carries only the messages;
"listening on PORT", the banner and the final count go to stderr.
`

// listenOptions are the knobs of listen beyond the node's.
type listenOptions struct {
	count  int
	print  string
	prefix bool // -0
}

func setupListen(fs *flag.FlagSet) func(stdio, []string) error {
	var (
		nf nodeFlags
		of observeFlags
		lo listenOptions
	)
	nf.register(fs, nodeUse{server: true,
		timeout: "send timeout (listen sends nothing but ACKs; it bounds connects and idle times)",
		workers: "goroutines printing messages (0: 16); 1 prints them in arrival order", defaultWorkers: 1})
	of.register(fs)
	fs.IntVar(&lo.count, "count", 0, "exit after this many messages (0: run until interrupted)")
	fs.StringVar(&lo.print, "print", "text", "what to print per message: text, raw (the data), json (JSON Lines) or none\n(only the count at the end)")
	fs.BoolVar(&lo.prefix, "0", false, "with -print raw: prefix each message's data with its length (4 bytes,\nbig-endian) instead of ending it with a newline")
	return func(s stdio, args []string) error {
		switch {
		case len(args) > 0:
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		case lo.count < 0:
			return usageError{"-count must not be negative"}
		case lo.print != "text" && lo.print != "raw" && lo.print != "json" && lo.print != "none":
			return usageError{fmt.Sprintf("-print %q: want text, raw, json or none", lo.print)}
		case lo.prefix && lo.print != "raw":
			return usageError{"-0 needs -print raw"}
		}
		ctx, stop := untilSignal()
		defer stop()
		return runListen(ctx, s, &nf, &of, lo)
	}
}

// runListen runs a node that prints each received message as lo.print says
// and releases it, until ctx ends or lo.count messages were printed.
func runListen(ctx context.Context, s stdio, nf *nodeFlags, of *observeFlags, lo listenOptions) error {
	cfg, err := nf.config(s.err)
	if err != nil {
		return err
	}
	ob, err := of.prepare("listen", &cfg)
	if err != nil {
		return err
	}
	defer ob.stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		seen int
		werr error
		out  = bufio.NewWriter(s.out)
	)
	write := printer(lo)
	cfg.ManualRelease = false
	cfg.Handler = node.HandlerFunc(func(m *node.Message) {
		mu.Lock()
		defer mu.Unlock()
		if (lo.count > 0 && seen >= lo.count) || werr != nil {
			return
		}
		seen++
		write(out, m)
		if werr = out.Flush(); werr != nil { // stdout closed (a pipe's reader left): stop
			cancel()
		}
		if lo.count > 0 && seen == lo.count {
			cancel()
		}
	})
	n, err := nf.start(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.err, "chirp listen: %s node %v, %s\n", modeName(cfg.Asynchronous), n.Identity(), security(cfg))
	fmt.Fprintf(s.err, "chirp listen: %s%d\n", perf.Ready, n.Port())
	ob.start(s, n)
	<-ctx.Done()
	ob.stop()
	err = closeNode(n)
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(s.err, "chirp listen: %d messages received\n", seen)
	if werr != nil {
		return fmt.Errorf("writing to stdout: %s", cause(werr))
	}
	return err
}

// printer returns the function writing one message as lo says.
func printer(lo listenOptions) func(w io.Writer, m *node.Message) {
	switch lo.print {
	case "raw":
		if lo.prefix {
			return func(w io.Writer, m *node.Message) {
				var n [4]byte
				binary.BigEndian.PutUint32(n[:], uint32(len(m.Data)))
				w.Write(n[:])
				w.Write(m.Data)
			}
		}
		return func(w io.Writer, m *node.Message) {
			w.Write(m.Data)
			io.WriteString(w, "\n")
		}
	case "json":
		return printJSON
	case "none":
		return func(io.Writer, *node.Message) {}
	}
	return printMessage
}

// printMessage writes the line of one received message: origin, identities,
// serial, sizes, then header and data as dissect shows them.
func printMessage(w io.Writer, m *node.Message) {
	ack := ""
	if m.RequestedAck() {
		ack = " ack"
	}
	fmt.Fprintf(w, "from %v node=%v identity=%v serial=%d header_len=%d data_len=%d%s",
		m.Addr, m.RemoteIdentity, m.Identity, m.Serial, len(m.Header), len(m.Data), ack)
	if len(m.Header) > 0 {
		fmt.Fprintf(w, " header=%s", showBody(m.Header))
	}
	if len(m.Data) > 0 {
		fmt.Fprintf(w, " data=%s", showBody(m.Data))
	}
	fmt.Fprintln(w)
}

// jsonMessage is a message as -print json and request -json write it.
type jsonMessage struct {
	Remote         string `json:"remote"`
	Node           string `json:"node"`
	Identity       string `json:"identity"`
	Serial         uint32 `json:"serial"`
	Header         string `json:"header"`
	HeaderEncoding string `json:"header_encoding"`
	Data           string `json:"data"`
	DataEncoding   string `json:"data_encoding"`
}

// printJSON writes m as one line of JSON.
func printJSON(w io.Writer, m *node.Message) {
	j := jsonMessage{Remote: m.Addr.String(), Node: m.RemoteIdentity.String(), Identity: m.Identity.String(), Serial: m.Serial}
	j.Header, j.HeaderEncoding = jsonBytes(m.Header)
	j.Data, j.DataEncoding = jsonBytes(m.Data)
	_ = json.NewEncoder(w).Encode(j) // cannot fail on strings; write errors show at the flush
}

// jsonBytes is b as a JSON string: itself when it is valid UTF-8, else
// base64; and which of the two.
func jsonBytes(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), "utf-8"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}
