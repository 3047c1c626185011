package main

import (
	"fmt"
	"io"
	"time"

	"github.com/gochirp/chirp/node"
	"github.com/gochirp/chirp/perf"
)

// statusLine prints line() to w every interval, the first time after
// delay, until stop is called. On a terminal (tty) it rewrites one line in
// place and erases it at stop; elsewhere each call is a line of its own.
func statusLine(w io.Writer, tty bool, delay, every time.Duration, line func() string) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(delay)
		defer t.Stop()
		printed := false
		for {
			select {
			case <-quit:
				if printed && tty {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(w, "\r%s\033[K", line())
				} else {
					fmt.Fprintln(w, line())
				}
				printed = true
				t.Reset(every)
			}
		}
	}()
	return func() { close(quit); <-done }
}

// watch prints the one-line rate view of -watch every second: messages per
// second in and out, connections, slots in use and errors so far.
func watch(cmd string, s stdio, stats func() node.Stats) (stop func()) {
	prev, last := stats(), time.Now()
	return statusLine(s.err, s.errTTY, time.Second, time.Second, func() string {
		cur, now := stats(), time.Now()
		secs := now.Sub(last).Seconds()
		line := fmt.Sprintf("chirp %s: %s msg/s in, %s msg/s out, %d connections, %d slots in use, %d errors", cmd,
			perf.Thousands(float64(cur.MessagesIn-prev.MessagesIn)/secs),
			perf.Thousands(float64(cur.MessagesOut-prev.MessagesOut)/secs),
			cur.Connections, cur.SlotsInUse, cur.SendErrors+cur.ProtocolErrors)
		prev, last = cur, now
		return line
	})
}

// progressAfter is how long a send or bench runs before it shows progress
// (on a terminal only).
const progressAfter = 2 * time.Second
