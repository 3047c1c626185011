package metrics

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gochirp/chirp/internal/leakcheck"
	"github.com/gochirp/chirp/internal/scrape"
	"github.com/gochirp/chirp/node"
	dto "github.com/prometheus/client_model/go"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func start(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	cfg.Port = node.AnyPort
	cfg.BindV4, cfg.DisableV6 = netip.MustParseAddr("127.0.0.1"), true
	cfg.DisableEncryption = true
	cfg.Timeout = time.Second
	n, err := node.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n
}

// TestServeExportsStatsAndSendLatency: a synchronous sender with the
// metrics hook sends to a receiver; the scrape, parsed by the client
// library's parser, shows the messages, the ACKs, the latency histogram
// and an error by kind.
func TestServeExportsStatsAndSendLatency(t *testing.T) {
	rx := start(t, node.Config{})
	m := New()
	tx := start(t, node.Config{OnSendDone: m.ObserveSend})
	m.Watch(tx)
	srv, err := m.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := fmt.Sprintf("http://%s/metrics", srv.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 20
	for i := 0; i < n; i++ {
		msg, _ := node.NewMessage(fmt.Sprintf("127.0.0.1:%d", rx.Port()), []byte("measure me"))
		if err := tx.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	dead, _ := node.NewMessage("127.0.0.1:1", []byte("nobody"))
	if err := tx.Send(ctx, dead); err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	mfs, err := scrape.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"chirp_messages_sent_total", nil, n},
		{"chirp_sent_bytes_total", nil, n * 10},
		{"chirp_acks_received_total", nil, n},
		{"chirp_messages_received_total", nil, 0},
		{"chirp_send_latency_seconds", nil, n},
		{"chirp_send_errors_total", []string{"kind", "cannot_connect"}, 1},
		{"chirp_send_errors_total", []string{"kind", "timeout"}, 0},
		{"chirp_send_errors_total", []string{"kind", "other"}, 0},
		{"chirp_remotes", nil, 2},
	} {
		if got, ok := mfs.Value(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if mf := mfs["chirp_messages_received_total"]; mf.GetType() != dto.MetricType_COUNTER {
		t.Errorf("chirp_messages_received_total is a %v", mf.GetType())
	}
	if mfs["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
	h := mfs["chirp_send_latency_seconds"].Metric[0].Histogram
	if h.GetSampleSum() <= 0 || h.GetSampleSum() > n*1.0 {
		t.Errorf("latency sum %v s for %d loopback sends", h.GetSampleSum(), n)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestObserveSendAllocatesNothing: the hook runs on the event loop for
// every synchronous send.
func TestObserveSendAllocatesNothing(t *testing.T) {
	m := New()
	if a := testing.AllocsPerRun(1000, func() { m.ObserveSend(time.Millisecond, nil) }); a != 0 {
		t.Fatalf("%v allocations per observation", a)
	}
}
