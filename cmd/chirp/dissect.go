package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/codec/hexdump"
)

func init() {
	register(&command{
		name:    "dissect",
		args:    "[-hex] [-max-size N] [FILE|-]",
		summary: "print the handshake and frames of one direction of a chirp stream",
		setup:   setupDissect,
	})
}

// dissectOptions are the knobs of dissect.
type dissectOptions struct {
	hex     bool   // input is capture text even if it does not look like it
	maxSize uint64 // frame body limit; 0 means codec.DefaultMaxMessageSize
}

// Output limits: how many body bytes a line shows, and how much input is
// looked at to tell capture text from raw bytes.
const (
	showBytes  = 64
	sniffBytes = 4096
)

func setupDissect(fs *flag.FlagSet) func(stdio, []string) error {
	var opts dissectOptions
	fs.BoolVar(&opts.hex, "hex", false, "read capture text ('#' comments, 'OFFSET: hh hh ...' lines) even if it does not look like it")
	fs.Uint64Var(&opts.maxSize, "max-size", codec.DefaultMaxMessageSize, "largest header_len+data_len accepted (0 means the default)")
	return func(s stdio, args []string) error {
		if len(args) > 1 {
			return usageError{fmt.Sprintf("want at most one FILE, got %d", len(args))}
		}
		in := s.in
		if len(args) == 1 && args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		return dissect(s.out, in, opts)
	}
}

// dissect decodes the chirp stream in r, raw bytes or capture text, and
// writes one line per handshake and frame to w. A stream that breaks the
// protocol or ends inside an item gives an error naming the offset of the
// item.
func dissect(w io.Writer, r io.Reader, opts dissectOptions) error {
	br := bufio.NewReaderSize(r, 64<<10)
	prefix, err := br.Peek(sniffBytes)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("reading input: %w", err)
	}
	var src io.Reader = br
	if opts.hex || hexdump.Detect(prefix) {
		src = hexdump.NewReader(br)
	}

	out := bufio.NewWriter(w)
	defer out.Flush()
	d := codec.NewDecoder(opts.maxSize)
	defer d.Close()

	var (
		offset    int64 // stream bytes consumed
		start     int64 // where the current handshake or frame began
		handshake bool  // the handshake is done
		inBody    bool  // the current frame's header is done
		chunk     = make([]byte, 64<<10)
	)
	for {
		n, readErr := src.Read(chunk)
		p := chunk[:n]
		for {
			k, ev, err := d.Next(p)
			offset += int64(k)
			p = p[k:]
			if err != nil {
				return fmt.Errorf("stream broken in the frame at offset %#x: %w", start, err)
			}
			if ev == codec.EventNone {
				break
			}
			switch ev {
			case codec.EventHandshake:
				h := d.Handshake()
				fmt.Fprintf(out, "@%08x len=%d HANDSHAKE port=%d identity=%v\n", start, offset-start, h.Port, h.Identity)
				handshake = true
			case codec.EventHeader:
				inBody = true
				continue
			case codec.EventFrame:
				f := d.Frame()
				printFrame(out, start, offset-start, &f)
				f.Free()
				inBody = false
			}
			start = offset
		}
		if readErr == io.EOF {
			if offset == start {
				return nil
			}
			want := int64(codec.HandshakeSize)
			switch {
			case inBody:
				h := d.Header()
				want = int64(codec.FrameLen(int(h.HeaderLen), int(h.DataLen)))
			case handshake:
				want = codec.FrameHeaderSize
			}
			return fmt.Errorf("stream ends inside the item at offset %#x: %d of %d bytes", start, offset-start, want)
		}
		if readErr != nil {
			return fmt.Errorf("reading input at stream offset %#x: %w", offset, readErr)
		}
	}
}

// printFrame writes the line of one frame: fields in wire order, then the
// header and data bytes.
func printFrame(w io.Writer, start, length int64, f *codec.Frame) {
	fmt.Fprintf(w, "@%08x len=%d FRAME identity=%v serial=%d data_len=%d header_len=%d type=0x%02x",
		start, length, f.Identity, f.Serial, f.DataLen, f.HeaderLen, uint8(f.Type))
	if f.Type != 0 {
		fmt.Fprintf(w, "(%v)", f.Type)
	}
	if len(f.Header) > 0 {
		fmt.Fprintf(w, " header=%s", showBody(f.Header))
	}
	if len(f.Data) > 0 {
		fmt.Fprintf(w, " data=%s", showBody(f.Data))
	}
	fmt.Fprintln(w)
}

// showBody renders b as quoted text when it is printable ASCII (tabs and
// newlines allowed), else as hex, cut after showBytes bytes.
func showBody(b []byte) string {
	shown := b[:min(len(b), showBytes)]
	var s string
	if printableASCII(shown) {
		s = strconv.Quote(string(shown))
	} else {
		s = fmt.Sprintf("0x%x", shown)
	}
	if len(shown) < len(b) {
		s += fmt.Sprintf("…(%d bytes)", len(b))
	}
	return s
}

func printableASCII(b []byte) bool {
	for _, c := range b {
		if (c < ' ' || c > '~') && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}
