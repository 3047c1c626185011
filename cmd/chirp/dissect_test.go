package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/codec/hexdump"
)

const captureDir = "../../codec/testdata/wire"

func captureFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(captureDir, "*.hex"))
	if len(files) != 8 {
		t.Fatalf("found %d captures in %s, want 8", len(files), captureDir)
	}
	return files
}

// rawStream returns the stream bytes of a capture file.
func rawStream(t *testing.T, file string) []byte {
	t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(hexdump.NewReader(bytes.NewReader(text)))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func dissectString(t *testing.T, in []byte, opts dissectOptions) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := dissect(&out, bytes.NewReader(in), opts)
	return out.String(), err
}

func TestDissectPrintsSyncCapture(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(captureDir, "sync_sender_to_echo.hex"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := dissectString(t, text, dissectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `@00000000 len=18 HANDSHAKE port=4220 identity=a3178b1a200ea07df38bf47cd6355257
@00000012 len=32 FRAME identity=654321601fa72107c3b1375e3f350805 serial=1684027538 data_len=5 header_len=0 type=0x01(REQ_ACK) data="hello"
@00000032 len=27 FRAME identity=654321601fa72107c3b1375e3f350805 serial=1684027539 data_len=0 header_len=0 type=0x02(ACK)
@0000004d len=35 FRAME identity=80ec5322f0c2376d1d47b823e54cc602 serial=1684027540 data_len=5 header_len=3 type=0x01(REQ_ACK) header="hdr" data="hello"
@00000070 len=27 FRAME identity=80ec5322f0c2376d1d47b823e54cc602 serial=1684027541 data_len=0 header_len=0 type=0x02(ACK)
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// itemComment is the start of a capture's per-item comment, which dissect's
// lines repeat.
var itemComment = regexp.MustCompile(`(?m)^# --- (@[0-9a-f]{8} len=\d+ FRAME identity=[0-9a-f]{32}|@[0-9a-f]{8} len=\d+ HANDSHAKE port=\d+ identity=[0-9a-f]{32})`)

func TestDissectReadsEveryCaptureAsTextAndRaw(t *testing.T) {
	for _, file := range captureFiles(t) {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, m := range itemComment.FindAllStringSubmatch(string(text), -1) {
			want = append(want, m[1])
		}
		fromText, err := dissectString(t, text, dissectOptions{})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		lines := strings.Split(strings.TrimSuffix(fromText, "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines, the capture describes %d items:\n%s", file, len(lines), len(want), fromText)
		}
		for i := range want {
			if !strings.HasPrefix(lines[i], want[i]) {
				t.Errorf("%s line %d: %q, want it to start %q", file, i, lines[i], want[i])
			}
		}
		if fromRaw, err := dissectString(t, rawStream(t, file), dissectOptions{}); err != nil || fromRaw != fromText {
			t.Errorf("%s as raw bytes: err %v, output\n%s\nwant the same as from text:\n%s", file, err, fromRaw, fromText)
		}
	}
}

func TestDissectReportsOffsetWhereStreamBreaks(t *testing.T) {
	raw := rawStream(t, filepath.Join(captureDir, "sync_sender_to_echo.hex"))
	raw[0x32+23] = 1 // the ACK at 0x32 now claims data_len 1
	out, err := dissectString(t, raw, dissectOptions{})
	if !errors.Is(err, codec.ErrAckWithBody) || !strings.Contains(err.Error(), "offset 0x32") {
		t.Fatalf("err = %v, want ErrAckWithBody at offset 0x32", err)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("printed %d lines before the break, want handshake and frame A:\n%s", n, out)
	}
}

func TestDissectReportsStreamEndingInsideFrame(t *testing.T) {
	raw := rawStream(t, filepath.Join(captureDir, "sync_sender_to_echo.hex"))
	for _, tc := range []struct {
		cut  int
		want string
	}{
		{10, "offset 0x0: 10 of 18 bytes"},
		{0x12 + 20, "offset 0x12: 20 of 27 bytes"},
		{0x12 + 30, "offset 0x12: 30 of 32 bytes"},
	} {
		_, err := dissectString(t, raw[:tc.cut], dissectOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cut at %d: err = %v, want it to contain %q", tc.cut, err, tc.want)
		}
	}
}

func TestDissectAppliesMaxSize(t *testing.T) {
	raw := rawStream(t, filepath.Join(captureDir, "sync_sender_to_echo.hex"))
	_, err := dissectString(t, raw, dissectOptions{maxSize: 4})
	if !errors.Is(err, codec.ErrTooLarge) || !strings.Contains(err.Error(), "limit 4") {
		t.Fatalf("err = %v, want ErrTooLarge naming limit 4", err)
	}
}

func TestDissectShowsBinaryAsHexAndCutsLongData(t *testing.T) {
	stream := codec.Handshake{}.Append(nil)
	stream = codec.AppendFrame(stream, codec.FrameHeader{}, []byte{0, 1, 0xff}, bytes.Repeat([]byte("a"), 100))
	out, err := dissectString(t, stream, dissectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := ` header=0x0001ff data="` + strings.Repeat("a", 64) + `"…(100 bytes)`; !strings.Contains(out, want) {
		t.Fatalf("output %q, want it to contain %q", out, want)
	}
}

func TestDissectForcedHexRejectsRawBytes(t *testing.T) {
	raw := rawStream(t, filepath.Join(captureDir, "sync_sender_to_echo.hex"))
	if _, err := dissectString(t, raw, dissectOptions{hex: true}); err == nil || !strings.Contains(err.Error(), "hexdump: line 1") {
		t.Fatalf("err = %v, want a hexdump error for line 1", err)
	}
}

func TestDissectCommandExitsOneOnBrokenStream(t *testing.T) {
	raw := rawStream(t, filepath.Join(captureDir, "sync_sender_to_echo.hex"))
	raw[0x32+26] = 0x03 // ACK|REQ_ACK
	code, _, stderr := runCapture(t, string(raw), "dissect", "-")
	if code != 1 || !strings.Contains(stderr, "chirp dissect: stream broken in the frame at offset 0x32") {
		t.Fatalf("exit %d, stderr %q; want 1 and the offset", code, stderr)
	}
}

func TestDissectCommandReadsFileArgument(t *testing.T) {
	code, stdout, stderr := runCapture(t, "", "dissect", filepath.Join(captureDir, "portmismatch_sender_to_echo.hex"))
	if code != 0 || !strings.Contains(stdout, "type=0x04(NOOP)") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the NOOP", code, stdout, stderr)
	}
	if code, _, _ := runCapture(t, "", "dissect", "a", "b"); code != 2 {
		t.Errorf("two files: exit %d, want 2", code)
	}
	if code, _, stderr := runCapture(t, "", "dissect", "/nonexistent/x.hex"); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q; want 1", code, stderr)
	}
}
