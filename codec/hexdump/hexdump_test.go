package hexdump

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readString(t *testing.T, text string) ([]byte, error) {
	t.Helper()
	return io.ReadAll(NewReader(strings.NewReader(text)))
}

func TestReaderJoinsDataLinesAndSkipsComments(t *testing.T) {
	got, err := readString(t, "# a comment\n00000000: 10 7c a3\n\n  # indented comment\n00000003: FF 00\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x10, 0x7c, 0xa3, 0xff, 0x00}; !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestReaderRejectsBrokenLines(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"offset gap", "00000000: 01 02\n00000003: 03\n", "line 2: offset 0x3, but 0x2 bytes came before"},
		{"bad byte", "00000000: 01 0g\n", "line 1: bad byte \"0g\""},
		{"three digits", "00000000: 012\n", "line 1: bad byte \"012\""},
		{"no colon", "hello\n", "line 1: \"hello\" is neither a comment nor OFFSET: hex bytes"},
		{"bad offset", "xyz: 01\n", "line 1: bad offset \"xyz\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readString(t, tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestReaderReadsIntoSmallBuffers(t *testing.T) {
	r := NewReader(strings.NewReader("00000000: 01 02 03 04 05\n00000005: 06\n"))
	var got []byte
	buf := make([]byte, 2)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := []byte{1, 2, 3, 4, 5, 6}; !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestDetectTellsCaptureTextFromRawBytes(t *testing.T) {
	files, _ := filepath.Glob("../testdata/wire/*.hex")
	if len(files) == 0 {
		t.Fatal("no captures in ../testdata/wire")
	}
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(NewReader(bytes.NewReader(text)))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !Detect(text) {
			t.Errorf("%s: Detect(text) = false", file)
		}
		if cut := text[:len(text)/2]; !Detect(cut) {
			t.Errorf("%s: Detect(first half of text) = false", file)
		}
		if Detect(raw) {
			t.Errorf("%s: Detect(raw stream) = true", file)
		}
	}
	// A raw handshake of port 0x2328 (9000) starts with '#'.
	hashPort := append([]byte{0x23, 0x28}, bytes.Repeat([]byte{0x9c}, 16)...)
	for _, in := range [][]byte{nil, []byte("\n\n"), hashPort, []byte("#\x01\x02 binary after a hash\n")} {
		if Detect(in) {
			t.Errorf("Detect(%q) = true, want false", in)
		}
	}
	if !Detect([]byte("00000000: 10 7c a3 17")) {
		t.Error("Detect of a lone data line without newline = false")
	}
}
