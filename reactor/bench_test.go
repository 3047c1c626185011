package reactor

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// benchEcho drives b.N request/response round trips of size bytes over
// conns connections against an echo server at addr.
func benchEcho(b *testing.B, addr string, conns, size int) {
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / conns
	for i, c := range cs {
		n := per
		if i == 0 {
			n += b.N % conns
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, size)
			got := make([]byte, size)
			for k := 0; k < n; k++ {
				if _, err := c.Write(msg); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// netEchoServer is the goroutine-per-connection baseline.
func netEchoServer(b *testing.B) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() { defer wg.Done(); serveNetEcho(ln, &wg) }()
	return ln.Addr().String()
}

// serveNetEcho accepts connections on ln until it is closed and echoes on
// each in a goroutine of its own (tracked by wg).
func serveNetEcho(ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// BenchmarkEcho compares echo round trips through the reactor with a
// goroutine-per-connection net.Conn server, same client, same run.
func BenchmarkEcho(b *testing.B) {
	for _, conns := range []int{1, 16} {
		for _, size := range []int{64, 16 << 10} {
			name := "conns=" + strconv.Itoa(conns) + "/size=" + strconv.Itoa(size)
			b.Run("reactor/"+name, func(b *testing.B) {
				r, err := Start(Config{ListenV4: "127.0.0.1", Handler: echoHandler()})
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				benchEcho(b, "127.0.0.1:"+strconv.Itoa(r.Port()), conns, size)
			})
			b.Run("netconn/"+name, func(b *testing.B) {
				benchEcho(b, netEchoServer(b), conns, size)
			})
		}
	}
}
