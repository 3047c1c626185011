package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestListenPrintsEachMessageAndStopsAfterCount(t *testing.T) {
	port, out, _, stop := startInProcess(t, func(ctx context.Context, s stdio) error {
		return runListen(ctx, s, loopbackFlags(false), &observeFlags{}, listenOptions{print: "text"})
	})
	dst := fmt.Sprintf("127.0.0.1:%d", port)
	send := func(data []byte, header string) {
		t.Helper()
		var o, e bytes.Buffer
		if err := runSend(context.Background(), stdio{out: &o, err: &e}, loopbackFlags(false), dst, data, sendOptions{n: 1, concurrency: 1, header: header}); err != nil {
			t.Fatalf("send: %v\n%s", err, o.String())
		}
	}
	send([]byte("hello listener"), "hdr")
	send([]byte{0, 1, 2, 0xff}, "")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two messages and nothing else on stdout, got:\n%s", out.String())
	}
	for _, want := range []string{"from 127.0.0.1:", "identity=", "serial=", "header_len=3", "data_len=14", " ack", `header="hdr"`, `data="hello listener"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "data=0x000102ff") || strings.Contains(lines[1], "header=") {
		t.Errorf("binary message shown as %q", lines[1])
	}
}

func TestListenEndsAfterCount(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- runListen(ctx, stdio{out: out, err: out}, loopbackFlags(true), &observeFlags{}, listenOptions{count: 1, print: "text"})
	}()
	var port int
	select {
	case port = <-out.ports:
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not start")
	}
	var o bytes.Buffer
	if err := runSend(context.Background(), stdio{out: &o, err: &o}, loopbackFlags(true), fmt.Sprintf("127.0.0.1:%d", port), []byte("one"), sendOptions{n: 1, concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen -count 1 did not end after one message")
	}
	if !strings.Contains(out.String(), `data="one"`) {
		t.Errorf("output %q", out.String())
	}
}
