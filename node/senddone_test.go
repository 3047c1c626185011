package node

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// sendDoneLog records what Config.OnSendDone observed.
type sendDoneLog struct {
	mu   sync.Mutex
	lats []time.Duration
	errs []error
}

func (l *sendDoneLog) observe(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lats = append(l.lats, d)
	l.errs = append(l.errs, err)
}

func (l *sendDoneLog) get() ([]time.Duration, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.lats...), append([]error(nil), l.errs...)
}

// TestOnSendDoneTimesWriteToAck: a synchronous send is observed once, with
// the time until the receiver released it (the ACK), and a send whose ACK
// never comes is observed with its timeout error.
func TestOnSendDoneTimesWriteToAck(t *testing.T) {
	rxCfg := testConfig(false, nil)
	rxCfg.Receive = ReceiveQueue
	rxCfg.ManualRelease = true
	rx := startNode(t, rxCfg)
	var log sendDoneLog
	txCfg := testConfig(false, nil)
	txCfg.OnSendDone = log.observe
	tx := startNode(t, txCfg)

	const hold = 150 * time.Millisecond
	m, _ := NewMessage(addr(rx), []byte("time me"))
	p := tx.Go(m)
	got, err := rx.Recv(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(hold)
	if err := got.Release(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	lats, errs := log.get()
	if len(lats) != 1 || errs[0] != nil || lats[0] < hold || lats[0] > hold+5*time.Second {
		t.Fatalf("after one acknowledged send: latencies %v, errors %v; want one of at least %v, no error", lats, errs, hold)
	}

	// Not released: the ACK never comes and the send times out (1 s).
	m2, _ := NewMessage(addr(rx), []byte("never released"))
	if err := tx.Go(m2).Wait(ctxT(t)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("unreleased send: %v, want ErrTimeout", err)
	}
	lats, errs = log.get()
	if len(lats) != 2 || !errors.Is(errs[1], ErrTimeout) || lats[1] < time.Second {
		t.Fatalf("after the timeout: latencies %v, errors %v; want a second one of at least 1s with ErrTimeout", lats, errs)
	}
}

// TestOnSendDoneIgnoresAsyncAndUnwrittenSends: asynchronous sends and sends
// that never reached a connection are not observed.
func TestOnSendDoneIgnoresAsyncAndUnwrittenSends(t *testing.T) {
	rx := startNode(t, testConfig(true, nil))
	var log sendDoneLog
	cfg := testConfig(true, nil)
	cfg.OnSendDone = log.observe
	tx := startNode(t, cfg)
	m, _ := NewMessage(addr(rx), []byte("async"))
	if err := tx.Send(ctxT(t), m); err != nil {
		t.Fatal(err)
	}
	syncCfg := testConfig(false, nil)
	syncCfg.OnSendDone = log.observe
	syncTx := startNode(t, syncCfg)
	dead, _ := NewMessage("127.0.0.1:1", []byte("nobody listens"))
	if err := syncTx.Send(ctxT(t), dead); !errors.Is(err, ErrCannotConnect) {
		t.Fatalf("send to a closed port: %v", err)
	}
	if lats, errs := log.get(); len(lats) != 0 {
		t.Fatalf("observed %v %v; want nothing", lats, errs)
	}
}
