package codec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gochirp/chirp/codec/hexdump"
)

// captureDir holds the libchirp captures (see its README).
const captureDir = "testdata/wire"

// item is one decoded handshake or frame, with where it sat in the stream.
type item struct {
	Offset, Len int
	Event       Event // EventHandshake or EventFrame
	Handshake   Handshake
	FrameHeader FrameHeader
	Header      []byte
	Data        []byte
}

// String keeps failure messages short: bodies show as length and prefix.
func (it item) String() string {
	if it.Event == EventHandshake {
		return fmt.Sprintf("@%d+%d handshake %+v", it.Offset, it.Len, it.Handshake)
	}
	return fmt.Sprintf("@%d+%d frame %+v header %d:%.8x data %d:%.8x", it.Offset, it.Len, it.FrameHeader, len(it.Header), it.Header, len(it.Data), it.Data)
}

// decodeResult is everything a decoder made of a stream.
type decodeResult struct {
	Items    []item
	Err      error
	Consumed int // bytes up to the end of the last complete item
}

// decodeChunks feeds chunks to a fresh decoder the way a reader would and
// checks the invariants of Next on the way: n never exceeds the input, and
// EventNone without error means everything was consumed. All buffers are
// returned when it ends.
func decodeChunks(tb testing.TB, maxSize uint64, chunks ...[]byte) decodeResult {
	tb.Helper()
	var res decodeResult
	d := NewDecoder(maxSize)
	defer d.Close()
	offset := 0
	for _, p := range chunks {
		for {
			n, ev, err := d.Next(p)
			if n < 0 || n > len(p) {
				tb.Fatalf("Next consumed %d of %d bytes", n, len(p))
			}
			offset += n
			p = p[n:]
			if err != nil {
				if n2, ev2, err2 := d.Next(p); n2 != 0 || ev2 != EventNone || err2 != err {
					tb.Fatalf("broken decoder: Next = (%d, %v, %v), want (0, EventNone, %v)", n2, ev2, err2, err)
				}
				res.Err = err
				return res
			}
			if ev == EventNone {
				if len(p) != 0 {
					tb.Fatalf("EventNone with %d bytes left unconsumed", len(p))
				}
				break
			}
			switch ev {
			case EventHandshake:
				res.Items = append(res.Items, item{Offset: res.Consumed, Len: offset - res.Consumed, Event: ev, Handshake: d.Handshake()})
			case EventHeader:
				continue
			case EventFrame:
				f := d.Frame()
				if f.FrameHeader != d.Header() {
					tb.Fatalf("Frame().FrameHeader = %+v, Header() = %+v", f.FrameHeader, d.Header())
				}
				if len(f.Header) != int(f.HeaderLen) || len(f.Data) != int(f.DataLen) {
					tb.Fatalf("frame slices %d+%d bytes, header says %d+%d", len(f.Header), len(f.Data), f.HeaderLen, f.DataLen)
				}
				res.Items = append(res.Items, item{Offset: res.Consumed, Len: offset - res.Consumed, Event: ev,
					FrameHeader: f.FrameHeader, Header: append([]byte{}, f.Header...), Data: append([]byte{}, f.Data...)})
				f.Free()
			default:
				tb.Fatalf("Next returned unknown event %d", ev)
			}
			res.Consumed = offset
		}
	}
	return res
}

// encodeItems is the inverse of decoding: the wire bytes of items.
func encodeItems(items []item) []byte {
	var b []byte
	for _, it := range items {
		if it.Event == EventHandshake {
			b = it.Handshake.Append(b)
		} else {
			b = AppendFrame(b, it.FrameHeader, it.Header, it.Data)
		}
	}
	return b
}

// bytewise splits p into one-byte chunks.
func bytewise(p []byte) [][]byte {
	chunks := make([][]byte, len(p))
	for i := range p {
		chunks[i] = p[i : i+1]
	}
	return chunks
}

// capture is one direction of a libchirp capture: its bytes, and the items
// its '# --- @OFFSET' comments say it holds.
type capture struct {
	name   string
	stream []byte
	want   []item
}

func loadCaptures(tb testing.TB) []capture {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(captureDir, "*.hex"))
	if err != nil || len(files) == 0 {
		wd, _ := os.Getwd()
		tb.Fatalf("no libchirp captures in %s (from %s): %v", captureDir, wd, err)
	}
	var captures []capture
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		stream, err := readAll(hexdump.NewReader(bytes.NewReader(text)))
		if err != nil {
			tb.Fatalf("%s: %v", file, err)
		}
		c := capture{name: filepath.Base(file), stream: stream}
		sc := bufio.NewScanner(bytes.NewReader(text))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "# --- @") {
				it, err := parseAnnotation(sc.Text())
				if err != nil {
					tb.Fatalf("%s: %v", file, err)
				}
				c.want = append(c.want, it)
			}
		}
		if len(c.want) == 0 {
			tb.Fatalf("%s: no '# --- @' comments describe its content", file)
		}
		captures = append(captures, c)
	}
	if len(captures) != 8 {
		tb.Fatalf("found %d captures in %s, want the 8 of sync, async, mixed, portmismatch in both directions", len(captures), captureDir)
	}
	return captures
}

func readAll(r *hexdump.Reader) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

var annotationRE = regexp.MustCompile(`^# --- @([0-9a-f]{8}) len=(\d+) (HANDSHAKE|FRAME) (.*)$`)

// parseAnnotation reads a comment such as
// "# --- @00000012 len=32 FRAME identity=… serial=… data_len=5 header_len=0 type=0x01 (REQ_ACK) data=b'hello'".
func parseAnnotation(line string) (item, error) {
	m := annotationRE.FindStringSubmatch(line)
	if m == nil {
		return item{}, fmt.Errorf("unreadable comment %q", line)
	}
	offset, _ := strconv.ParseInt(m[1], 16, 64)
	length, _ := strconv.Atoi(m[2])
	fields := map[string]string{}
	for _, f := range strings.Fields(m[4]) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	var errs []error
	num := func(key string, bits int) uint64 {
		v, err := strconv.ParseUint(fields[key], 0, bits)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", key, err))
		}
		return v
	}
	id := func() (id Identity) {
		b, err := hexDecode(fields["identity"])
		if err != nil || len(b) != IdentitySize {
			errs = append(errs, fmt.Errorf("field identity %q", fields["identity"]))
		}
		copy(id[:], b)
		return id
	}
	body := func(key string) []byte {
		v, ok := fields[key]
		if !ok {
			return []byte{}
		}
		// Python bytes literal; the captures only hold plain ASCII.
		if !strings.HasPrefix(v, "b'") || !strings.HasSuffix(v, "'") || strings.Contains(v, `\`) {
			errs = append(errs, fmt.Errorf("field %s=%s is not a plain b'...' literal", key, v))
			return nil
		}
		return []byte(v[2 : len(v)-1])
	}
	it := item{Offset: int(offset), Len: length}
	if m[3] == "HANDSHAKE" {
		it.Event = EventHandshake
		it.Handshake = Handshake{Port: uint16(num("port", 16)), Identity: id()}
	} else {
		it.Event = EventFrame
		it.FrameHeader = FrameHeader{
			Identity:  id(),
			Serial:    uint32(num("serial", 32)),
			DataLen:   uint32(num("data_len", 32)),
			HeaderLen: uint16(num("header_len", 16)),
			Type:      Type(num("type", 8)),
		}
		it.Header, it.Data = body("header"), body("data")
	}
	if len(errs) > 0 {
		return item{}, fmt.Errorf("comment %q: %w", line, errors.Join(errs...))
	}
	return it, nil
}

func hexDecode(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

func TestDecoderReadsEveryLibchirpCapture(t *testing.T) {
	for _, c := range loadCaptures(t) {
		t.Run(c.name, func(t *testing.T) {
			got := decodeChunks(t, 0, c.stream)
			if got.Err != nil {
				t.Fatalf("decode error: %v", got.Err)
			}
			if got.Consumed != len(c.stream) {
				t.Errorf("decoded %d of %d bytes into items", got.Consumed, len(c.stream))
			}
			if len(got.Items) != len(c.want) {
				t.Fatalf("decoded %d items, the comments describe %d", len(got.Items), len(c.want))
			}
			for i, want := range c.want {
				if g := got.Items[i]; !reflect.DeepEqual(g, want) {
					t.Errorf("item %d:\n got %+v\nwant %+v", i, g, want)
				}
			}
		})
	}
}

func TestEncodingDecodedCapturesGivesTheSameBytes(t *testing.T) {
	for _, c := range loadCaptures(t) {
		got := decodeChunks(t, 0, c.stream)
		if enc := encodeItems(got.Items); !bytes.Equal(enc, c.stream) {
			t.Errorf("%s: re-encoded\n%x\nwant\n%x", c.name, enc, c.stream)
		}
	}
}

func TestDecoderReadsCapturesFedByteByByte(t *testing.T) {
	for _, c := range loadCaptures(t) {
		whole := decodeChunks(t, 0, c.stream)
		if got := decodeChunks(t, 0, bytewise(c.stream)...); !reflect.DeepEqual(got, whole) {
			t.Errorf("%s: byte by byte gave %+v, in one piece %+v", c.name, got, whole)
		}
	}
}

// splitStream is a handshake and two frames: a message with header and data,
// then an ACK without body.
func splitStream() []byte {
	b := Handshake{Port: 2998, Identity: Identity{0xaa, 0xbb}}.Append(nil)
	b = AppendFrame(b, FrameHeader{Identity: Identity{1, 2, 3}, Serial: 41, Type: ReqAck}, []byte("hdr"), []byte("hello"))
	return AppendFrame(b, FrameHeader{Identity: Identity{1, 2, 3}, Serial: 42, Type: Ack}, nil, nil)
}

func TestDecoderGivesSameResultAtEverySplit(t *testing.T) {
	stream := splitStream()
	whole := decodeChunks(t, 0, stream)
	if whole.Err != nil || len(whole.Items) != 3 || whole.Consumed != len(stream) {
		t.Fatalf("in one piece: %+v", whole)
	}
	for i := 0; i <= len(stream); i++ {
		for j := i; j <= len(stream); j++ {
			got := decodeChunks(t, 0, stream[:i], stream[i:j], stream[j:])
			if !reflect.DeepEqual(got, whole) {
				t.Fatalf("split at %d and %d: %+v, want %+v", i, j, got, whole)
			}
		}
	}
	if got := decodeChunks(t, 0, bytewise(stream)...); !reflect.DeepEqual(got, whole) {
		t.Fatalf("byte by byte: %+v, want %+v", got, whole)
	}
}

func TestDecoderAcceptsHandshakeSplitInHalves(t *testing.T) {
	// libchirp closes on this split; being lenient costs nothing.
	got := decodeChunks(t, 0, syncHandshake[:9], syncHandshake[9:])
	if got.Err != nil || len(got.Items) != 1 || got.Items[0].Handshake.Port != 4220 {
		t.Fatalf("got %+v, want the handshake of port 4220", got)
	}
}

func TestDecoderRejectsFramesBreakingTheRules(t *testing.T) {
	for _, tc := range rejections {
		t.Run(tc.name, func(t *testing.T) {
			before := OutstandingBuffers()
			d := NewDecoder(tc.limit)
			defer d.Close()
			if _, ev, err := d.Next(syncHandshake); ev != EventHandshake || err != nil {
				t.Fatalf("handshake: %v %v", ev, err)
			}
			// The header comes with body bytes behind it: a rejected
			// frame must not get any of them consumed or buffered.
			stream := append(tc.h.Append(nil), "some body bytes"...)
			n, ev, err := d.Next(stream)
			if n != FrameHeaderSize {
				t.Errorf("consumed %d bytes, want the %d of the header", n, FrameHeaderSize)
			}
			if OutstandingBuffers() != before {
				t.Errorf("%d buffers taken before the body was asked for", OutstandingBuffers()-before)
			}
			checkRejection(t, err, tc.want, tc.protocol, tc.mentions)
			wantEv := EventNone
			if tc.want == nil {
				wantEv = EventHeader
			}
			if ev != wantEv {
				t.Errorf("event %v, want %v", ev, wantEv)
			}
		})
	}
}

func TestBrokenDecoderStaysBrokenUntilReset(t *testing.T) {
	d := NewDecoder(0)
	defer d.Close()
	d.Next(syncHandshake)
	bad := FrameHeader{Type: Ack, DataLen: 1}
	_, _, first := d.Next(bad.Append(nil))
	if !errors.Is(first, ErrAckWithBody) {
		t.Fatalf("err = %v, want ErrAckWithBody", first)
	}
	good := AppendFrame(nil, FrameHeader{}, nil, []byte("x"))
	for range 3 {
		if n, ev, err := d.Next(good); n != 0 || ev != EventNone || err != first {
			t.Fatalf("Next after error = (%d, %v, %v), want (0, EventNone, the first error)", n, ev, err)
		}
	}
	d.Reset()
	if _, ev, err := d.Next(syncHandshake); ev != EventHandshake || err != nil {
		t.Fatalf("after Reset: (%v, %v), want a fresh handshake", ev, err)
	}
}

func TestDecoderFrameHoldsHeaderThenDataInOneBuffer(t *testing.T) {
	d := NewDecoder(0)
	defer d.Close()
	stream := splitStream()
	n, _, _ := d.Next(stream)
	n2, ev, _ := d.Next(stream[n:])
	if ev != EventHeader {
		t.Fatalf("event %v, want EventHeader", ev)
	}
	if _, ev, _ = d.Next(stream[n+n2:]); ev != EventFrame {
		t.Fatalf("event %v, want EventFrame", ev)
	}
	f := d.Frame()
	defer f.Free()
	if string(f.Buf.B) != "hdrhello" || string(f.Header) != "hdr" || string(f.Data) != "hello" {
		t.Fatalf("Buf %q Header %q Data %q, want hdrhello, hdr, hello", f.Buf.B, f.Header, f.Data)
	}
	if &f.Header[0] != &f.Buf.B[0] || &f.Data[0] != &f.Buf.B[3] {
		t.Fatal("Header and Data do not alias Buf")
	}
	if again := d.Frame(); again.Buf != nil || again.FrameHeader != f.FrameHeader {
		t.Fatalf("second Frame() = %+v, want the header without the handed-over buffer", again)
	}
}

func TestDecoderFrameWithoutBodyNeedsNoBytesAndNoBuffer(t *testing.T) {
	d := NewDecoder(0)
	defer d.Close()
	d.Next(syncHandshake)
	ack := FrameHeader{Identity: Identity{9}, Serial: 3, Type: Ack}
	if _, ev, _ := d.Next(ack.Append(nil)); ev != EventHeader {
		t.Fatalf("event %v, want EventHeader", ev)
	}
	n, ev, err := d.Next(nil)
	if n != 0 || ev != EventFrame || err != nil {
		t.Fatalf("Next(nil) = (%d, %v, %v), want (0, EventFrame, nil)", n, ev, err)
	}
	if f := d.Frame(); f.Buf != nil || f.Header != nil || f.Data != nil || f.FrameHeader != ack {
		t.Fatalf("Frame() = %+v, want the ACK header without buffer", f)
	}
}

func TestDecoderReturnsFrameNotTakenBeforeNextCall(t *testing.T) {
	before := OutstandingBuffers()
	d := NewDecoder(0)
	defer d.Close()
	stream := splitStream()
	for len(stream) > 0 {
		n, _, err := d.Next(stream) // never calls Frame
		if err != nil {
			t.Fatal(err)
		}
		stream = stream[n:]
	}
	d.Next(nil)
	if got := OutstandingBuffers() - before; got != 0 {
		t.Fatalf("%d buffers outstanding, want 0", got)
	}
}

func TestDecoderCloseReturnsPartialBody(t *testing.T) {
	before := OutstandingBuffers()
	d := NewDecoder(0)
	stream := splitStream()
	partial := stream[:HandshakeSize+FrameHeaderSize+4]
	for len(partial) > 0 {
		n, _, _ := d.Next(partial)
		partial = partial[n:]
	}
	if OutstandingBuffers() != before+1 {
		t.Fatalf("%d buffers outstanding during the body, want 1", OutstandingBuffers()-before)
	}
	d.Close()
	if OutstandingBuffers() != before {
		t.Fatalf("%d buffers outstanding after Close, want 0", OutstandingBuffers()-before)
	}
}

func TestDecoderBufferGrowsWithArrivingBytesNotClaimedSize(t *testing.T) {
	d := NewDecoder(0)
	defer d.Close()
	d.Next(syncHandshake)
	claim := FrameHeader{DataLen: DefaultMaxMessageSize}
	if _, ev, err := d.Next(claim.Append(nil)); ev != EventHeader || err != nil {
		t.Fatalf("100 MiB claim: (%v, %v), want EventHeader", ev, err)
	}
	if n, ev, _ := d.Next(make([]byte, 1000)); n != 1000 || ev != EventNone {
		t.Fatalf("Next = (%d, %v), want (1000, EventNone)", n, ev)
	}
	if c := cap(d.body.B); c > 2*bodyReserve {
		t.Fatalf("body buffer holds %d bytes of capacity after 1000 bytes of a 100 MiB claim", c)
	}
}

func TestDecoderDeliversUnknownTypeBits(t *testing.T) {
	stream := Handshake{}.Append(nil)
	stream = AppendFrame(stream, FrameHeader{Type: 0x80}, []byte("h"), []byte("d"))
	stream = AppendFrame(stream, FrameHeader{Type: Ack | 0x10}, nil, nil)
	got := decodeChunks(t, 0, stream)
	if got.Err != nil || len(got.Items) != 3 || got.Items[1].FrameHeader.Type != 0x80 || got.Items[2].FrameHeader.Type != Ack|0x10 {
		t.Fatalf("got %+v, want both frames with their type bits", got)
	}
}

func TestDecoderDoesNotAllocatePerFrame(t *testing.T) {
	if raceEnabled {
		// sync.Pool drops a quarter of its Puts under the race detector,
		// so the pooled buffer is reallocated at random.
		t.Log("race detector on: allocation count not meaningful, checked in the normal run")
		return
	}
	for _, size := range benchSizes {
		d, frame := benchDecoder(size.n)
		allocs := testing.AllocsPerRun(100, func() { decodeOne(d, frame) })
		d.Close()
		if allocs != 0 {
			t.Errorf("%s: %v allocations per frame, want 0", size.name, allocs)
		}
	}
}

// benchDecoder returns a decoder past the handshake and the bytes of one
// frame with size data bytes.
func benchDecoder(size int) (*Decoder, []byte) {
	d := NewDecoder(0)
	d.Next(syncHandshake)
	frame := AppendFrame(nil, FrameHeader{Identity: Identity{1}, Serial: 7, Type: ReqAck}, nil, make([]byte, size))
	return d, frame
}

// decodeOne feeds one whole frame and frees it, as a reader would.
func decodeOne(d *Decoder, frame []byte) {
	for p := frame; ; {
		n, ev, err := d.Next(p)
		if err != nil {
			panic(err)
		}
		p = p[n:]
		if ev == EventFrame {
			f := d.Frame()
			f.Free()
			return
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			d, frame := benchDecoder(size.n)
			defer d.Close()
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				decodeOne(d, frame)
			}
		})
	}
}

func FuzzDecoder(f *testing.F) {
	for _, c := range loadCaptures(f) {
		f.Add(c.stream)
		f.Add(c.stream[:len(c.stream)-1])
	}
	f.Add(append(bytes.Clone(syncHandshake), FrameHeader{Type: Ack, DataLen: 1}.appendTo()...))
	f.Add(append(bytes.Clone(syncHandshake), FrameHeader{DataLen: 0xffffffff, HeaderLen: 1}.appendTo()...))
	f.Fuzz(func(t *testing.T, stream []byte) {
		before := OutstandingBuffers()
		whole := decodeChunks(t, 0, stream)
		if got := decodeChunks(t, 0, bytewise(stream)...); !reflect.DeepEqual(got, whole) {
			t.Fatalf("byte by byte: %+v\nin one piece: %+v", got, whole)
		}
		if enc := encodeItems(whole.Items); !bytes.Equal(enc, stream[:whole.Consumed]) {
			t.Fatalf("re-encoding %d items gave %x, want the %d bytes consumed %x", len(whole.Items), enc, whole.Consumed, stream[:whole.Consumed])
		}
		if whole.Err != nil && !errors.Is(whole.Err, ErrTooLarge) && !errors.Is(whole.Err, ErrProtocol) {
			t.Fatalf("error %v is neither ErrTooLarge nor ErrProtocol", whole.Err)
		}
		if got := OutstandingBuffers() - before; got != 0 {
			t.Fatalf("%d buffers not returned", got)
		}
	})
}

// appendTo is Append on a fresh slice, for literals.
func (h FrameHeader) appendTo() []byte { return h.Append(nil) }

func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint16(16))
	f.Add(uint64(2), uint8(1), uint16(0))
	f.Add(uint64(3), uint8(8), uint16(65535))
	f.Fuzz(func(t *testing.T, seed uint64, frames uint8, maxBody uint16) {
		rng := rand.New(rand.NewPCG(seed, uint64(frames)))
		want := []item{{Len: HandshakeSize, Event: EventHandshake, Handshake: Handshake{Port: uint16(rng.Uint32())}}}
		fillRandom(rng, want[0].Handshake.Identity[:])
		stream := want[0].Handshake.Append(nil)
		for range frames % 16 {
			h := FrameHeader{Serial: rng.Uint32(), Type: Type(rng.Uint32())}
			fillRandom(rng, h.Identity[:])
			header := make([]byte, rng.IntN(int(maxBody)+1))
			data := make([]byte, rng.IntN(int(maxBody)+1))
			if h.Type.control() {
				h.Type &^= ReqAck
				header, data = []byte{}, []byte{}
			}
			fillRandom(rng, header)
			fillRandom(rng, data)
			h.HeaderLen, h.DataLen = uint16(len(header)), uint32(len(data))
			want = append(want, item{Offset: len(stream), Len: FrameLen(len(header), len(data)), Event: EventFrame, FrameHeader: h, Header: header, Data: data})
			stream = AppendFrame(stream, h, header, data)
		}
		var chunks [][]byte
		for p := stream; len(p) > 0; {
			n := min(len(p), rng.IntN(2*int(maxBody)+40))
			chunks = append(chunks, p[:n])
			p = p[n:]
		}
		got := decodeChunks(t, 0, chunks...)
		if got.Err != nil || got.Consumed != len(stream) || !reflect.DeepEqual(got.Items, want) {
			t.Fatalf("decoded %+v\nwant %+v", got, want)
		}
	})
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

func TestZeroDecoderUsesDefaultLimit(t *testing.T) {
	var d Decoder
	defer d.Close()
	d.Next(syncHandshake)
	atLimit := FrameHeader{DataLen: DefaultMaxMessageSize}
	if _, ev, err := d.Next(atLimit.Append(nil)); ev != EventHeader || err != nil {
		t.Fatalf("exactly the default limit: (%v, %v), want EventHeader", ev, err)
	}
	d.Reset()
	d.Next(syncHandshake)
	over := FrameHeader{DataLen: DefaultMaxMessageSize + 1}
	if _, _, err := d.Next(over.Append(nil)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one over the default limit: %v, want ErrTooLarge", err)
	}
}
