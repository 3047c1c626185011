// Package metrics exports a chirp node's counters (node.Stats) and the
// latency of its synchronous sends in the Prometheus text format, for the
// chirp command's -metrics flag and for applications that embed a node. It
// lives apart from package node so that the node depends on no metrics
// library: the node only offers Stats and the Config.OnSendDone hook.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochirp/chirp/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LatencyBuckets are the upper bounds, in seconds, of the send-latency
// histogram: 50 µs (a loopback round trip) to 10 s (beyond the longest
// default timeout).
var LatencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics collects one node's metrics. Make it with New, put ObserveSend in
// the node's Config.OnSendDone, start the node, then Watch it.
type Metrics struct {
	reg     *prometheus.Registry
	latency prometheus.Histogram
	failed  prometheus.Histogram
	stats   atomic.Pointer[node.Node]
}

// New makes the metrics of one node, with the Go runtime's and the
// process's metrics beside them, as operators expect of a Go program.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chirp_send_latency_seconds",
			Help:    "Time from writing a synchronous send to its ACK (the remote released the message).",
			Buckets: LatencyBuckets,
		}),
		failed: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chirp_send_failure_latency_seconds",
			Help:    "Time from writing a synchronous send to its failure (timeout, connection lost).",
			Buckets: LatencyBuckets,
		}),
	}
	m.reg.MustRegister(m.latency, m.failed, statsCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveSend is a node.Config.OnSendDone: it runs on the node's event loop
// and only adds to a histogram (atomic, no allocation).
func (m *Metrics) ObserveSend(latency time.Duration, err error) {
	if err != nil {
		m.failed.Observe(latency.Seconds())
		return
	}
	m.latency.Observe(latency.Seconds())
}

// Watch makes n the node whose Stats are exported. Before it, only the
// histograms and the runtime's metrics are.
func (m *Metrics) Watch(n *node.Node) { m.stats.Store(n) }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// A counter or gauge taken from node.Stats.
type statDesc struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(s *node.Stats) float64
}

func counter(name, help string, v func(s *node.Stats) uint64) statDesc {
	return statDesc{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue,
		func(s *node.Stats) float64 { return float64(v(s)) }}
}

func gauge(name, help string, v func(s *node.Stats) int) statDesc {
	return statDesc{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue,
		func(s *node.Stats) float64 { return float64(v(s)) }}
}

var statDescs = []statDesc{
	counter("chirp_messages_received_total", "User messages received.", func(s *node.Stats) uint64 { return s.MessagesIn }),
	counter("chirp_messages_sent_total", "User messages written to a connection.", func(s *node.Stats) uint64 { return s.MessagesOut }),
	counter("chirp_received_bytes_total", "Header and data bytes of the user messages received.", func(s *node.Stats) uint64 { return s.BytesIn }),
	counter("chirp_sent_bytes_total", "Header and data bytes of the user messages written.", func(s *node.Stats) uint64 { return s.BytesOut }),
	counter("chirp_acks_received_total", "ACKs received (synchronous sends completed).", func(s *node.Stats) uint64 { return s.AcksIn }),
	counter("chirp_acks_sent_total", "ACKs sent (received messages released for a synchronous sender).", func(s *node.Stats) uint64 { return s.AcksOut }),
	counter("chirp_protocol_errors_total", "Connections closed because the peer broke the protocol.", func(s *node.Stats) uint64 { return s.ProtocolErrors }),
	counter("chirp_read_pauses_total", "Times a connection stopped being read for lack of free message slots.", func(s *node.Stats) uint64 { return s.Pauses }),
	gauge("chirp_connections", "Open connections.", func(s *node.Stats) int { return s.Connections }),
	gauge("chirp_remotes", "Known remote nodes.", func(s *node.Stats) int { return s.Remotes }),
	gauge("chirp_slots_in_use", "Received messages not yet released.", func(s *node.Stats) int { return s.SlotsInUse }),
	gauge("chirp_paused_connections", "Connections not being read for lack of free message slots.", func(s *node.Stats) int { return s.PausedConnections }),
}

// sendErrors is chirp_send_errors_total by kind: the kinds node.Stats
// counts, and "other" for the rest of SendErrors.
var sendErrors = prometheus.NewDesc("chirp_send_errors_total", "Sends that finished with an error, by kind.", []string{"kind"}, nil)

// statsCollector reads node.Stats once per scrape.
type statsCollector struct{ m *Metrics }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range statDescs {
		ch <- d.desc
	}
	ch <- sendErrors
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.m.stats.Load()
	if n == nil {
		return
	}
	s := n.Stats()
	for _, d := range statDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, d.value(&s))
	}
	kinds := []struct {
		kind string
		n    uint64
	}{{"timeout", s.Timeouts}, {"cannot_connect", s.CannotConnect}, {"tls", s.TLSErrors}, {"shutdown", s.Shutdowns}}
	other := s.SendErrors
	for _, k := range kinds {
		ch <- prometheus.MustNewConstMetric(sendErrors, prometheus.CounterValue, float64(k.n), k.kind)
		other -= min(other, k.n)
	}
	ch <- prometheus.MustNewConstMetric(sendErrors, prometheus.CounterValue, float64(other), "other")
}

// Server serves the metrics at /metrics over HTTP.
type Server struct {
	ln    net.Listener
	srv   *http.Server
	done  chan error
	close sync.Once
	err   error
}

// Serve listens on addr ("host:port"; port 0 picks a free one) and serves
// m at /metrics until Close.
func (m *Metrics) Serve(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting scrapes in progress finish for a moment.
// Later calls return the first one's result.
func (s *Server) Close() error {
	s.close.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.err = s.srv.Shutdown(ctx)
		if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && s.err == nil {
			s.err = serr
		}
	})
	return s.err
}
