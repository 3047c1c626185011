package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestSendFailsWhenNobodyListens(t *testing.T) {
	var out, errOut bytes.Buffer
	nf := loopbackFlags(false)
	err := runSend(context.Background(), stdio{out: &out, err: &errOut}, nf, "127.0.0.1:1", []byte("x"), sendOptions{n: 2, concurrency: 1})
	if err == nil || !strings.Contains(err.Error(), "2 of 2 sends failed") || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("send to a closed port: %v", err)
	}
	if !strings.Contains(out.String(), "0 ok, 2 failed") {
		t.Errorf("send printed %q", out.String())
	}
}
