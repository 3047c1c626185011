package node

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/gochirp/chirp/codec"
)

func randomIdentity() codec.Identity {
	var id codec.Identity
	_, _ = rand.Read(id[:])
	return id
}

// TestNodeAnswersCapturedCSenderByteExactly replays the sender side of the
// sync, async and mixed captures in testdata/wire against an echoing Go
// node and checks every byte the node writes back: its handshake, the
// echoes (type from the node's own mode), and an ACK for every REQ_ACK
// frame, sent on release, all with consecutive serials.
func TestNodeAnswersCapturedCSenderByteExactly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		peerType  codec.Type // what the C sender writes
		nodeAsync bool
	}{
		{"sync", codec.ReqAck, false}, // sync_*.hex
		{"async", 0, true},            // async_*.hex
		{"mixed", codec.ReqAck, true}, // mixed_*.hex: sync sender, async echo
		{"async-to-sync", 0, false},   // the reverse mix
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, rec := startEchoNode(t, testConfig(tc.nodeAsync, nil))
			p := dialRawPeer(t, n)
			p.expectHandshake(n)

			echoType := codec.ReqAck
			if tc.nodeAsync {
				echoType = 0
			}
			var serial uint32
			first := true
			expectFrame := func(what string, h codec.FrameHeader, header, data []byte) {
				t.Helper()
				f := p.readFrame()
				if first {
					serial, first = f.Serial, false
				} else {
					serial++
				}
				h.Serial = serial
				want := codec.AppendFrame(nil, h, header, data)
				if !bytes.Equal(f.Wire, want) {
					t.Fatalf("%s: node wrote\n% x\nwant\n% x", what, f.Wire, want)
				}
			}

			// Message A: data "hello", no header; message B: header "hdr",
			// data "hello". Like the C sender, B goes out once A is done.
			wantAcks := 0
			for _, msg := range []struct{ header, data []byte }{
				{nil, []byte("hello")},
				{[]byte("hdr"), []byte("hello")},
			} {
				id := randomIdentity()
				p.send(tc.peerType, id, msg.header, msg.data)
				expectFrame("echo", codec.FrameHeader{Identity: id, Type: echoType}, msg.header, msg.data)
				if echoType&codec.ReqAck != 0 {
					if tc.peerType&codec.ReqAck != 0 {
						// The handler holds our message until its echo is
						// acknowledged, so our ACK must not come yet.
						p.expectSilence(100 * time.Millisecond)
					}
					p.send(codec.Ack, id, nil, nil)
				}
				if err := rec.waitEcho(t); err != nil {
					t.Fatalf("echo send: %v", err)
				}
				if tc.peerType&codec.ReqAck != 0 {
					expectFrame("ACK", codec.FrameHeader{Identity: id, Type: codec.Ack}, nil, nil)
					wantAcks++
				}
			}
			p.expectSilence(100 * time.Millisecond)

			st := n.Stats()
			wantAcksIn := 0
			if echoType&codec.ReqAck != 0 {
				wantAcksIn = 2
			}
			if st.MessagesIn != 2 || st.MessagesOut != 2 || st.AcksOut != uint64(wantAcks) ||
				st.AcksIn != uint64(wantAcksIn) || st.ProtocolErrors != 0 || st.SendErrors != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestNodeAcceptsNoopSilently: a NOOP (zero identity, type 4) is no message,
// gets no answer and does not upset the connection.
func TestNodeAcceptsNoopSilently(t *testing.T) {
	n, _ := startEchoNode(t, testConfig(true, nil))
	p := dialRawPeer(t, n)
	p.expectHandshake(n)
	p.send(codec.Noop, codec.Identity{}, nil, nil)
	p.expectSilence(100 * time.Millisecond)
	p.exchange(nil, []byte("after the noop"))
	if st := n.Stats(); st.MessagesIn != 1 || st.ProtocolErrors != 0 || st.AcksIn != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestNodeDeliversFrameWithUnknownTypeBit: bits above NOOP are ignored, as
// in libchirp; with REQ_ACK also set, the frame is acknowledged.
func TestNodeDeliversFrameWithUnknownTypeBit(t *testing.T) {
	n, rec := startEchoNode(t, testConfig(true, nil))
	p := dialRawPeer(t, n)
	p.expectHandshake(n)

	id := randomIdentity()
	p.send(0x10, id, []byte("h"), []byte("unknown bit"))
	echo := p.readFrame()
	if echo.Identity != id || echo.Type != 0 || string(echo.Header) != "h" || string(echo.Data) != "unknown bit" {
		t.Fatalf("echo %+v %q %q", echo.FrameHeader, echo.Header, echo.Data)
	}
	if err := rec.waitEcho(t); err != nil {
		t.Fatal(err)
	}

	id = randomIdentity()
	p.send(0x10|codec.ReqAck, id, nil, []byte("unknown bit, ack wanted"))
	echo = p.readFrame()
	if echo.Identity != id || echo.Type != 0 || string(echo.Data) != "unknown bit, ack wanted" {
		t.Fatalf("echo %+v %q", echo.FrameHeader, echo.Data)
	}
	ack := p.readFrame()
	if ack.Identity != id || ack.Type != codec.Ack || ack.DataLen != 0 || ack.HeaderLen != 0 || ack.Serial != echo.Serial+1 {
		t.Fatalf("ack %+v after echo serial %d", ack.FrameHeader, echo.Serial)
	}
	if st := n.Stats(); st.MessagesIn != 2 || st.ProtocolErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}
