package codec_test

import (
	"fmt"

	"github.com/gochirp/chirp/codec"
)

// A reader feeds whatever arrived to the decoder and acts on each event; here
// the whole stream arrives at once.
func ExampleDecoder() {
	stream := codec.Handshake{Port: 2998, Identity: codec.Identity{0xab}}.Append(nil)
	stream = codec.AppendFrame(stream, codec.FrameHeader{Serial: 1, Type: codec.ReqAck}, []byte("hdr"), []byte("hello"))

	d := codec.NewDecoder(0)
	defer d.Close()
	for {
		n, ev, err := d.Next(stream)
		if err != nil {
			fmt.Println("close the connection:", err)
			return
		}
		stream = stream[n:]
		switch ev {
		case codec.EventNone:
			return // wait for more bytes
		case codec.EventHandshake:
			fmt.Println("peer listens on port", d.Handshake().Port)
		case codec.EventHeader:
			// Acquire a slot here; without one, stop reading and call Next
			// again once a slot is free.
		case codec.EventFrame:
			f := d.Frame()
			fmt.Printf("serial %d type %v header %q data %q\n", f.Serial, f.Type, f.Header, f.Data)
			f.Free() // in a node: when the application releases the message
		}
	}
	// Output:
	// peer listens on port 2998
	// serial 1 type REQ_ACK header "hdr" data "hello"
}

func ExampleAppendFrame() {
	ack := codec.FrameHeader{Identity: codec.Identity{0xab}, Serial: 2, Type: codec.Ack}
	frame := codec.AppendFrame(make([]byte, 0, codec.FrameLen(0, 0)), ack, nil, nil)
	fmt.Printf("% x\n", frame)
	// Output:
	// ab 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00 00 00 00 02
}

func ExampleFrameHeader_Check() {
	h := codec.FrameHeader{Type: codec.Ack, DataLen: 5}
	fmt.Println(h.Check(0))
	// Output:
	// codec: frame type=ACK header_len=0 data_len=5, limit 0 for ACK and NOOP: ACK frame with a body: chirp protocol error
}
