package codec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// asyncB is message B of the async capture: the layout of docs/protocol.md §1.2.
var asyncB = mustHex("c082a211b4e4b96461c54845116dfd4a" + "21561ce7" + "00000005" + "0003" + "00" + "686472" + "68656c6c6f")

func TestFrameHeaderWireOrderIsDataLenBeforeHeaderLen(t *testing.T) {
	h, err := ParseFrameHeader(asyncB)
	if err != nil {
		t.Fatal(err)
	}
	want := FrameHeader{
		Identity:  Identity(mustHex("c082a211b4e4b96461c54845116dfd4a")),
		Serial:    559291623,
		DataLen:   5,
		HeaderLen: 3,
		Type:      0,
	}
	if h != want {
		t.Fatalf("parsed %+v, want %+v", h, want)
	}
	if got := h.Append(nil); !bytes.Equal(got, asyncB[:FrameHeaderSize]) {
		t.Fatalf("Append = %x, want %x", got, asyncB[:FrameHeaderSize])
	}
}

func TestAppendFrameTakesLengthsFromSlices(t *testing.T) {
	h := FrameHeader{Identity: Identity(mustHex("c082a211b4e4b96461c54845116dfd4a")), Serial: 559291623, DataLen: 99, HeaderLen: 99}
	got := AppendFrame([]byte("prefix"), h, []byte("hdr"), []byte("hello"))
	if !bytes.Equal(got[len("prefix"):], asyncB) {
		t.Fatalf("AppendFrame = %x, want %x", got[len("prefix"):], asyncB)
	}
	if len(got)-len("prefix") != FrameLen(3, 5) {
		t.Fatalf("frame is %d bytes, FrameLen says %d", len(got)-len("prefix"), FrameLen(3, 5))
	}
}

func TestAppendFramePanicsOnHeaderTheWireCannotCarry(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "header_len=65536") {
			t.Fatalf("recover() = %v, want a panic naming header_len=65536", r)
		}
	}()
	AppendFrame(nil, FrameHeader{}, make([]byte, 65536), nil)
}

func TestAppendFrameDoesNotAllocate(t *testing.T) {
	h := FrameHeader{Type: ReqAck}
	header, data := []byte("hdr"), []byte("hello")
	buf := make([]byte, 0, FrameLen(len(header), len(data)))
	if allocs := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], h, header, data) }); allocs != 0 {
		t.Fatalf("AppendFrame allocated %v times per call", allocs)
	}
}

func TestParseFrameHeaderRejectsShortBuffer(t *testing.T) {
	_, err := ParseFrameHeader(asyncB[:FrameHeaderSize-1])
	if !errors.Is(err, ErrShortBuffer) || !strings.Contains(err.Error(), "needs 27 bytes, got 26") {
		t.Fatalf("err = %v, want ErrShortBuffer naming 27 and 26", err)
	}
}

func TestBodyLenIsHeaderPlusData(t *testing.T) {
	h := FrameHeader{HeaderLen: 0xffff, DataLen: 0xffffffff}
	if got, want := h.BodyLen(), 0xffff+0xffffffff; got != want {
		t.Fatalf("BodyLen = %d, want %d", got, want)
	}
}

func TestTypeString(t *testing.T) {
	for _, tc := range []struct {
		t    Type
		want string
	}{
		{0, "0"},
		{ReqAck, "REQ_ACK"},
		{Ack, "ACK"},
		{Noop, "NOOP"},
		{Ack | ReqAck, "REQ_ACK|ACK"},
		{Noop | Ack, "ACK|NOOP"},
		{Ack | 0x10, "ACK|0x10"},
		{0x18, "0x18"},
		{0xff, "REQ_ACK|ACK|NOOP|0xf8"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("Type(%#x).String() = %q, want %q", uint8(tc.t), got, tc.want)
		}
	}
}

func TestIdentityIsLowercaseHexAndZeroForNoop(t *testing.T) {
	id := Identity{0xAB, 0x01}
	if got, want := id.String(), "ab010000000000000000000000000000"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if id.IsZero() {
		t.Error("IsZero = true for a non-zero identity")
	}
	if !(Identity{}).IsZero() {
		t.Error("IsZero = false for the zero identity")
	}
}

func TestIdentityPrintsAsHexWithEveryHexVerb(t *testing.T) {
	id := Identity{0xAB, 0x01}
	hex := "ab010000000000000000000000000000"
	for _, c := range []struct{ format, want string }{
		{"%v", hex},
		{"%s", hex},
		{"%x", hex},
		{"%X", strings.ToUpper(hex)},
		{"%q", `"` + hex + `"`},
		{"%40s", "        " + hex},
		{"%d", "[171 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0]"},
		{"%#v", "[16]uint8{0xab, 0x1, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0}"},
	} {
		if got := fmt.Sprintf(c.format, id); got != c.want {
			t.Errorf("Sprintf(%q) = %q, want %q", c.format, got, c.want)
		}
	}
	// Inside a struct, as in a log line of a Message.
	if got := fmt.Sprintf("%v", struct{ ID Identity }{id}); got != "{"+hex+"}" {
		t.Errorf("in a struct: %q", got)
	}
}

// rejections are the docs/protocol.md §1.4 rules, for Check and the Decoder.
var rejections = []struct {
	name     string
	h        FrameHeader
	limit    uint64 // 0: the default
	want     error  // nil: accepted
	protocol bool   // errors.Is(err, ErrProtocol)
	mentions []string
}{
	{name: "data of exactly 100 MiB", h: FrameHeader{DataLen: 100 << 20}},
	{name: "header and data of exactly 100 MiB", h: FrameHeader{HeaderLen: 3, DataLen: 100<<20 - 3}},
	{name: "data one byte over 100 MiB", h: FrameHeader{DataLen: 100<<20 + 1}, want: ErrTooLarge,
		mentions: []string{"data_len=104857601", "header_len=0", "limit 104857600"}},
	{name: "header pushes data over 100 MiB", h: FrameHeader{HeaderLen: 1, DataLen: 100 << 20}, want: ErrTooLarge,
		mentions: []string{"header_len=1", "data_len=104857600", "= 104857601", "limit 104857600"}},
	{name: "data_len 0xFFFFFFFF with header would wrap in 32 bits", h: FrameHeader{HeaderLen: 1, DataLen: 0xffffffff}, want: ErrTooLarge,
		mentions: []string{"data_len=4294967295", "= 4294967296"}},
	{name: "custom limit accepts its size", h: FrameHeader{DataLen: 10}, limit: 10},
	{name: "custom limit rejects one more", h: FrameHeader{HeaderLen: 1, DataLen: 10}, limit: 10, want: ErrTooLarge,
		mentions: []string{"limit 10"}},
	{name: "ACK with data", h: FrameHeader{Type: Ack, DataLen: 5}, want: ErrAckWithBody, protocol: true,
		mentions: []string{"type=ACK", "data_len=5", "limit 0"}},
	{name: "ACK with header", h: FrameHeader{Type: Ack, HeaderLen: 3}, want: ErrAckWithBody, protocol: true,
		mentions: []string{"header_len=3"}},
	{name: "NOOP with body", h: FrameHeader{Type: Noop, HeaderLen: 1, DataLen: 1}, want: ErrNoopWithBody, protocol: true,
		mentions: []string{"type=NOOP"}},
	{name: "NOOP|ACK with body counts as NOOP", h: FrameHeader{Type: Noop | Ack, DataLen: 1}, want: ErrNoopWithBody, protocol: true},
	{name: "ACK with REQ_ACK", h: FrameHeader{Type: Ack | ReqAck}, want: ErrControlWithReqAck, protocol: true,
		mentions: []string{"type=REQ_ACK|ACK", "0x03"}},
	{name: "NOOP with REQ_ACK", h: FrameHeader{Type: Noop | ReqAck}, want: ErrControlWithReqAck, protocol: true,
		mentions: []string{"0x05"}},
	{name: "NOOP|ACK without body", h: FrameHeader{Type: Noop | Ack}},
	{name: "ACK with unknown bit", h: FrameHeader{Type: Ack | 0x10}},
	{name: "unknown bits with body", h: FrameHeader{Type: 0x80 | ReqAck, HeaderLen: 2, DataLen: 3}},
	{name: "user message without body", h: FrameHeader{Type: ReqAck}},
}

func TestCheckAppliesReceiverRules(t *testing.T) {
	for _, tc := range rejections {
		t.Run(tc.name, func(t *testing.T) {
			checkRejection(t, tc.h.Check(tc.limit), tc.want, tc.protocol, tc.mentions)
		})
	}
}

func checkRejection(t *testing.T, err, want error, protocol bool, mentions []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if got := errors.Is(err, ErrProtocol); got != protocol {
		t.Errorf("errors.Is(err, ErrProtocol) = %v, want %v", got, protocol)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("err = %q, want it to mention %q", err, m)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			data := make([]byte, size.n)
			h := FrameHeader{Identity: Identity{1}, Serial: 7, Type: ReqAck}
			buf := make([]byte, 0, FrameLen(0, len(data)))
			b.ReportAllocs()
			b.SetBytes(int64(FrameLen(0, len(data))))
			for b.Loop() {
				buf = AppendFrame(buf[:0], h, nil, data)
			}
		})
	}
}

var benchSizes = []struct {
	name string
	n    int
}{{"5B", 5}, {"64KiB", 64 << 10}}
