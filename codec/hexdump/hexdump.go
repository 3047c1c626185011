// Package hexdump reads the text form of chirp wire captures (the *.hex files
// of testdata/wire): lines starting with '#' are comments, and data lines
// "OFFSET: hh hh ..." give up to a few bytes each, OFFSET being the stream
// offset of their first byte in hex. It yields the bytes and knows nothing
// of the handshake and frames inside them.
package hexdump

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// maxLine bounds the length of one input line.
const maxLine = 1 << 20

// Reader turns capture text into the stream bytes it describes. Data lines
// must follow each other without gaps: a line whose OFFSET is not the number
// of bytes before it is an error naming the line.
type Reader struct {
	lines   *bufio.Scanner
	line    int    // number of the last line read
	offset  int64  // stream bytes decoded so far
	buf     []byte // decoded bytes of the last data line
	pending []byte // the part of buf not yet read
	err     error
}

// NewReader returns a Reader of the capture text in r.
func NewReader(r io.Reader) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(nil, maxLine)
	return &Reader{lines: s}
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 && r.err == nil {
		r.err = r.nextLine()
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	if len(r.pending) > 0 {
		return n, nil
	}
	return n, r.err
}

// nextLine decodes the next data line into pending, skipping comments and
// blank lines.
func (r *Reader) nextLine() error {
	if !r.lines.Scan() {
		if err := r.lines.Err(); err != nil {
			return fmt.Errorf("hexdump: after line %d: %w", r.line, err)
		}
		return io.EOF
	}
	r.line++
	text := bytes.TrimSpace(r.lines.Bytes())
	if len(text) == 0 || text[0] == '#' {
		return nil
	}
	offset, data, err := parseDataLine(text, r.buf[:0])
	if err != nil {
		return fmt.Errorf("hexdump: line %d: %w", r.line, err)
	}
	if offset != r.offset {
		return fmt.Errorf("hexdump: line %d: offset %#x, but %#x bytes came before", r.line, offset, r.offset)
	}
	r.offset += int64(len(data))
	r.buf, r.pending = data, data
	return nil
}

// parseDataLine parses "OFFSET: hh hh ..." and appends the bytes to buf.
func parseDataLine(line, buf []byte) (int64, []byte, error) {
	head, rest, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return 0, nil, fmt.Errorf("%q is neither a comment nor OFFSET: hex bytes", truncate(line))
	}
	offset, err := strconv.ParseInt(string(head), 16, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("bad offset %q", truncate(head))
	}
	for _, field := range bytes.Fields(rest) {
		if len(field) != 2 {
			return 0, nil, fmt.Errorf("bad byte %q, want two hex digits", truncate(field))
		}
		var b [1]byte
		if _, err := hex.Decode(b[:], field); err != nil {
			return 0, nil, fmt.Errorf("bad byte %q, want two hex digits", field)
		}
		buf = append(buf, b[0])
	}
	return offset, buf, nil
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// Detect reports whether prefix, the start of some input, looks like capture
// text rather than raw stream bytes: every line so far is blank, a comment of
// printable text, or a data line, and there is at least one such line. A raw
// chirp stream fails this almost surely, as its handshake holds 16 random
// identity bytes.
func Detect(prefix []byte) bool {
	lines := bytes.Split(prefix, []byte("\n"))
	last := len(lines) - 1
	// The last line may be cut short: drop a rune cut in half and accept a
	// data line cut anywhere.
	for i := 0; i < utf8.UTFMax && len(lines[last]) > 0 && !utf8.Valid(lines[last]); i++ {
		lines[last] = lines[last][:len(lines[last])-1]
	}
	seen := false
	for i, line := range lines {
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
			continue
		case line[0] == '#':
			if !printable(line) {
				return false
			}
		case i == last:
			if !dataLinePrefix(line) {
				return false
			}
		default:
			if _, _, err := parseDataLine(line, nil); err != nil {
				return false
			}
		}
		seen = true
	}
	return seen
}

func printable(text []byte) bool {
	if !utf8.Valid(text) {
		return false
	}
	for _, r := range string(text) {
		if r < ' ' && r != '\t' || r == utf8.RuneError || r == 0x7f {
			return false
		}
	}
	return true
}

// dataLinePrefix reports whether line could be the start of a data line.
func dataLinePrefix(line []byte) bool {
	head, rest, _ := bytes.Cut(line, []byte(":"))
	if len(head) == 0 {
		return false
	}
	for _, c := range head {
		if !isHex(c) {
			return false
		}
	}
	for _, c := range rest {
		if !isHex(c) && c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
