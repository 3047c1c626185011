package node

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestConfigRejectsEveryInvalidValueByName(t *testing.T) {
	base := Config{DisableEncryption: true, Port: AnyPort}
	cases := []struct {
		field string
		mod   func(*Config)
	}{
		{"Port", func(c *Config) { c.Port = 1024 }},
		{"Port", func(c *Config) { c.Port = 65536 }},
		{"PublicPort", func(c *Config) { c.PublicPort = -1 }},
		{"DisableV4", func(c *Config) { c.DisableV4, c.DisableV6 = true, true }},
		{"BindV4", func(c *Config) { c.BindV4 = netip.IPv6Loopback() }},
		{"BindV6", func(c *Config) { c.BindV6 = netip.MustParseAddr("127.0.0.1") }},
		{"MaxSlots", func(c *Config) { c.MaxSlots = 33 }},
		{"MaxSlots", func(c *Config) { c.MaxSlots = -1 }},
		{"Timeout", func(c *Config) { c.Timeout = 50 * time.Millisecond }},
		{"Timeout", func(c *Config) { c.Timeout = 1201 * time.Second }},
		{"ReuseTime", func(c *Config) { c.ReuseTime = 3601 * time.Second }},
		{"Backlog", func(c *Config) { c.Backlog = 128 }},
		{"BufferSize", func(c *Config) { c.BufferSize = 1023 }},
		{"AlwaysEncrypt", func(c *Config) { c.DisableEncryption, c.AlwaysEncrypt = false, true }},
		{"Workers", func(c *Config) { c.Workers = -1 }},
		{"Handler", func(c *Config) { c.Receive = ReceiveInline }},
		{"Receive", func(c *Config) { c.Receive = 7 }},
		{"MaxPending", func(c *Config) { c.MaxPending = -1 }},
		{"BusyPoll", func(c *Config) { c.BusyPoll = -1 }},
		{"BusyPoll", func(c *Config) { c.BusyPoll = 11 * time.Millisecond }},
	}
	for _, tc := range cases {
		cfg := base
		tc.mod(&cfg)
		n, err := Start(cfg)
		if err == nil {
			_ = n.Close(context.Background())
			t.Errorf("%s: invalid config accepted", tc.field)
			continue
		}
		if !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), "Config."+tc.field) {
			t.Errorf("%s: error %q does not wrap ErrValue and name the field", tc.field, err)
		}
	}
}

func TestConfigDefaultsAndNormalisation(t *testing.T) {
	s, err := Config{DisableEncryption: true}.settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.port != 2998 || s.slots != 1 || s.timeout != 5*time.Second || s.reuse != 30*time.Second ||
		s.connectTimeout != 10*time.Second || s.maxMsg != 100<<20 || s.backlog != 100 ||
		s.maxPending != DefaultMaxPending {
		t.Fatalf("defaults: %+v", s)
	}
	// Synchronous forces one slot; asynchronous defaults to 16.
	if s, _ := (Config{DisableEncryption: true, MaxSlots: 5}).settings(); s.slots != 1 {
		t.Fatalf("sync slots %d", s.slots)
	}
	if s, _ := (Config{DisableEncryption: true, Asynchronous: true}).settings(); s.slots != 16 {
		t.Fatalf("async slots %d", s.slots)
	}
	// Reuse time is raised to 3×Timeout (libchirp: 0.4 s with 5 s → 15 s).
	if s, _ := (Config{DisableEncryption: true, ReuseTime: 400 * time.Millisecond}).settings(); s.reuse != 15*time.Second {
		t.Fatalf("reuse %v", s.reuse)
	}
	// Connect timeout is 2×Timeout capped at 60 s.
	if s, _ := (Config{DisableEncryption: true, Timeout: 40 * time.Second}).settings(); s.connectTimeout != 60*time.Second {
		t.Fatalf("connect timeout %v", s.connectTimeout)
	}
}

func TestIdentityIsHonouredInFull(t *testing.T) {
	var id [16]byte
	for i := range id {
		id[i] = byte(i + 1)
	}
	cfg := testConfig(false, nil)
	cfg.Identity = id
	n := startNode(t, cfg)
	if n.Identity() != id {
		t.Fatalf("identity %v", n.Identity())
	}
}

func TestPortInUseIsErrAddrInUse(t *testing.T) {
	a := startNode(t, testConfig(false, nil))
	cfg := testConfig(false, nil)
	cfg.Port = a.Port()
	if _, err := Start(cfg); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("want ErrAddrInUse, got %v", err)
	}
}

func TestCloseLetsInFlightSendsFinishThenFailsTheRest(t *testing.T) {
	// A receiver that holds messages for 200 ms: sends in flight finish
	// within Close's deadline when it is long enough...
	slow := HandlerFunc(func(*Message) { time.Sleep(200 * time.Millisecond) })
	rx := startNode(t, testConfig(false, slow))
	tx, err := Start(testConfig(false, nil))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMessage(addr(rx), []byte("finish me"))
	p := tx.Go(m)
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tx.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("in-flight send failed although Close waited: %v", err)
	}
	if err := tx.SendAsync(m, nil); !errors.Is(err, ErrShutdown) {
		t.Fatalf("send after Close: %v", err)
	}
	// ...and fail with ErrShutdown when the deadline is shorter.
	tx2, _ := Start(testConfig(false, nil))
	var ps []*Pending
	for i := 0; i < 3; i++ {
		m, _ := NewMessage(addr(rx), []byte("late"))
		ps = append(ps, tx2.Go(m))
	}
	time.Sleep(20 * time.Millisecond)
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_ = tx2.Close(short)
	failed := 0
	for _, p := range ps {
		if err := p.Err(); errors.Is(err, ErrShutdown) {
			failed++
		} else if err != nil {
			t.Errorf("unexpected error %v", err)
		}
	}
	if failed == 0 {
		t.Fatal("no send failed with ErrShutdown after a short Close")
	}
}
