package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/heap"
)

// TestSendQueueBoundPushesBack: at Config.MaxPending pending sends,
// SendAsync and Go fail at once with ErrQueueFull, Send waits (and gives up
// with its ctx, the message not in use), and a place freed lets a waiting
// Send through.
func TestSendQueueBoundPushesBack(t *testing.T) {
	rx, held := holder(t)
	cfg := patient()
	cfg.MaxPending = 4
	tx := startNode(t, cfg)
	var ps []*Pending
	for i := 0; i < 4; i++ {
		m, _ := NewMessage(addr(rx), []byte{byte(i)})
		ps = append(ps, tx.Go(m))
	}
	over, _ := NewMessage(addr(rx), []byte("over"))
	if err := tx.Go(over).Err(); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Go at the bound: %v", err)
	}
	if err := tx.SendAsync(over, nil); err != ErrQueueFull {
		t.Fatalf("SendAsync at the bound: %v", err)
	}
	if err := tx.Send(shortCtx(t, 100*time.Millisecond), over); err != context.DeadlineExceeded {
		t.Fatalf("Send at the bound: %v", err)
	}
	if over.inFlight.Load() {
		t.Fatal("refused message in flight")
	}
	waited := make(chan error, 1)
	go func() { waited <- tx.Send(ctxT(t), over) }()
	select {
	case err := <-waited:
		t.Fatalf("Send did not wait for room: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	// Release all five as they come: the first finished send makes room.
	for i := 0; i < 5; i++ {
		_ = (<-held).Release()
	}
	if err := <-waited; err != nil {
		t.Fatalf("waiting Send: %v", err)
	}
	for _, p := range ps {
		if err := p.Wait(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSendWaitingForRoomFailsOnClose: Close wakes sends waiting for room.
func TestSendWaitingForRoomFailsOnClose(t *testing.T) {
	cfg := testConfig(false, nil)
	cfg.MaxPending = 1
	tx, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := acceptRaw(t, nil)
	m, _ := NewMessage(dst, []byte("stuck"))
	p := tx.Go(m)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			m, _ := NewMessage(dst, []byte("waiting"))
			errs <- tx.Send(context.Background(), m)
		}()
	}
	eventually(t, 5*time.Second, "three Sends wait", func() bool { return tx.spaceWaiters.Load() == 3 })
	_ = tx.Close(shortCtx(t, 100*time.Millisecond))
	for i := 0; i < 3; i++ {
		if err := <-errs; !errors.Is(err, ErrShutdown) {
			t.Fatalf("waiting Send after Close: %v", err)
		}
	}
	if err := p.Err(); !errors.Is(err, ErrShutdown) {
		t.Fatalf("pending: %v", err)
	}
}

// TestMemoryStaysFlatWhenProducerOutrunsStalledRemote: a producer that
// sends with Go as fast as it can to a remote that never answers holds at
// most MaxPending messages; the rest are refused with ErrQueueFull and
// collected. Without the bound the 100k messages of 1 KiB stay queued
// (over 100 MiB).
func TestMemoryStaysFlatWhenProducerOutrunsStalledRemote(t *testing.T) {
	cfg := testConfig(true, nil)
	cfg.MaxPending = 1000
	cfg.Timeout = 30 * time.Second // no send fails, and frees its place, meanwhile
	tx, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Close(shortCtx(t, 100*time.Millisecond)) }()
	dst, _ := acceptRaw(t, nil) // accepts, never handshakes: nothing is written
	before := heap.InUse()
	accepted, full := 0, 0
	for i := 0; i < 100_000; i++ {
		m, _ := NewMessage(dst, make([]byte, 1024))
		p := tx.Go(m)
		select {
		case <-p.Done():
			if !errors.Is(p.Err(), ErrQueueFull) {
				t.Fatal(p.Err())
			}
			full++
		default:
			accepted++
		}
	}
	grown := int64(heap.InUse()) - int64(before)
	t.Logf("accepted %d, refused %d, heap grew %d KiB", accepted, full, grown>>10)
	if accepted != 1000 || full != 99_000 {
		t.Fatalf("accepted %d, refused %d; want 1000, 99000", accepted, full)
	}
	if grown > 16<<20 {
		t.Fatalf("heap grew %d MiB for 1000 pending 1 KiB messages", grown>>20)
	}
}
