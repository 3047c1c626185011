package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochirp/chirp/codec"
	"github.com/gochirp/chirp/slots"
)

// Identity is a 16-byte node or message identity. It prints as 32 hex
// digits with %v, %s and %x. It is codec.Identity: users need not import
// codec.
type Identity = codec.Identity

// Message is what a node sends and receives.
//
// A received message carries where it came from: Addr is the peer's IP and
// the port it announced (the port it listens on), so sending the message
// back, with new Header or Data, is a reply routed over the existing
// connection, with the same Identity (how requests and replies match).
// Reply does that, through the node that received the message (Node).
//
// A received message holds one of its connection's slots until it is
// released; Header and Data alias the slot's buffer and are valid only
// until then. With automatic release, a message the node released itself
// is reused for a later received message once the handler returned (and a
// send made of it finished): the handler must not keep the pointer. A
// message the application released itself, or one received with
// ManualRelease, is never reused (see the package guide, Slots and release).
type Message struct {
	// Identity is random for a new message and kept by replies.
	Identity Identity
	// Serial is the sender's per-remote frame counter (received messages).
	Serial uint32
	// Header is an opaque header for upper-layer protocols.
	Header []byte
	// Data is the payload.
	Data []byte
	// Addr is the destination (sending) or the origin (received).
	Addr netip.AddrPort
	// RemoteIdentity is the identity of the node that sent it (received).
	RemoteIdentity Identity

	ackWanted bool        // received with REQ_ACK: Release sends an ACK
	inFlight  atomic.Bool // between send and completion
	held      atomic.Bool // holds a slot, not yet released
	slot      *slots.Slot
	conn      *conn
	node      *Node

	// loop-owned while in flight
	done   func(*Message, error)
	remote *remote
	timer  interface{ Stop() bool }
	err    error

	waitCh     chan error // Send's result channel
	written    time.Time  // loop-owned: when a synchronous send was written (Config.OnSendDone)
	delivered  time.Time  // loop-owned, while held
	heldLogged bool
	// releaseAfterSend: released while being sent; the slot is freed when
	// the send finished (loop-owned).
	releaseAfterSend bool
	// refs counts what must still happen before a received message goes
	// back to msgPool: its handler returning and its slot being freed
	// (unref). Set on the loop before the message is handed out; messages
	// that must never be reused start at keepForever, and a release by the
	// application pins the message with one more reference.
	refs atomic.Int32
}

// keepForever is the refs of a message that is never reused: more than
// the unrefs it can get.
const keepForever = 1 << 20

// msgPool recycles received messages: zero allocations per message in
// steady state. Only the node's own releases put messages back (unref).
var msgPool = sync.Pool{New: func() any { return new(Message) }}

// newReceived returns a zeroed message for a received frame (loop).
func newReceived() *Message { return msgPool.Get().(*Message) }

// unref drops one of the references counted in refs; the last one returns
// m to the pool. Whoever calls it must not touch m afterwards.
func (m *Message) unref() {
	if m.refs.Add(-1) == 0 {
		*m = Message{}
		msgPool.Put(m)
	}
}

// NewMessage makes a message to addr ("host:port") with a fresh random
// identity. The host is an IP literal or a name, looked up within
// DefaultResolveTimeout (see ResolveAddr; NewMessageContext takes a
// context for it).
func NewMessage(addr string, data []byte) (*Message, error) {
	return NewMessageContext(context.Background(), addr, data)
}

// NewMessageContext is NewMessage with ctx bounding the lookup of a host
// name.
func NewMessageContext(ctx context.Context, addr string, data []byte) (*Message, error) {
	ap, err := ResolveAddr(ctx, addr)
	if err != nil {
		return nil, err
	}
	m := &Message{Addr: ap, Data: data}
	m.NewIdentity()
	return m, nil
}

// NewIdentity gives the message a fresh random identity.
func (m *Message) NewIdentity() { _, _ = rand.Read(m.Identity[:]) }

// HasSlot reports whether the message holds a slot that must be released.
func (m *Message) HasSlot() bool { return m.held.Load() }

// RequestedAck reports whether the sender asked for an ACK (it is a
// synchronous node): it learns of the release.
func (m *Message) RequestedAck() bool { return m.ackWanted }

// Release frees the message's slot and, if the sender asked for it, sends
// the ACK. Safe from any goroutine. Header and Data must not be used after
// it. A second Release returns ErrNotHeld, whenever it comes: a message
// the application released is never reused by the node. Releasing a
// message that is being sent (a reply made of it) is safe: the slot is
// freed, and the ACK sent, when that send finished.
func (m *Message) Release() error {
	if !m.held.CompareAndSwap(true, false) {
		return ErrNotHeld
	}
	m.refs.Add(1) // the application may keep it: never reused
	m.node.post(inboxOp{m: m, release: true})
	return nil
}

// autoRelease is the node's automatic release from a goroutine other than
// the loop (a worker after the handler, Recv): unlike Release it does not
// pin m, so m is reused once its slot is free.
func (m *Message) autoRelease() {
	if m.held.CompareAndSwap(true, false) {
		m.node.post(inboxOp{m: m, release: true})
	}
}

// ReleaseOnLoop is Release for code that already runs on the node's event
// loop (ReceiveInline handlers, send completion callbacks): it skips the
// hand-off. Calling it from any other goroutine corrupts the node.
func (m *Message) ReleaseOnLoop() error {
	if !m.held.CompareAndSwap(true, false) {
		return ErrNotHeld
	}
	m.refs.Add(1) // the application may keep it: never reused
	m.node.release(m)
	return nil
}

// Node is the node that received m, nil for a message that was not
// received (NewMessage). Through it a handler sends, or replies, without a
// variable of its own: the handler may run before Start has returned.
func (m *Message) Node() *Node { return m.node }

// Reply sends m back to where it came from, with data as its Data: a reply
// keeps m's Identity (that is how the requester matches it) and its Header
// (set m.Header first to change it), and goes to m.Addr over the
// connection m came on. It waits as Node.Send does, on the node that
// received m. m keeps its slot until the reply was sent, so data may alias
// m.Data. m must have been received (ErrValue otherwise). Not on the event
// loop (ReceiveInline handlers): there, set m.Data and use
// m.Node().SendOnLoop.
func (m *Message) Reply(ctx context.Context, data []byte) error {
	if m.node == nil {
		return fmt.Errorf("%w: reply to %s: not a received message", ErrValue, m)
	}
	m.Data = data
	return m.node.Send(ctx, m)
}

// String describes the message for logs.
func (m *Message) String() string {
	return fmt.Sprintf("message %s serial %d to/from %s (%d header, %d data bytes)",
		m.Identity, m.Serial, m.Addr, len(m.Header), len(m.Data))
}
