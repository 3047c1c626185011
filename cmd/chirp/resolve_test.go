package main

import (
	"context"
	"errors"
	"testing"
)

// TestResolveTakesNodeAddresses: the CLI takes addresses as the node
// package does; a malformed one is a usage error.
func TestResolveTakesNodeAddresses(t *testing.T) {
	ap, err := resolve(context.Background(), "[::1]:2998")
	if err != nil || ap.String() != "[::1]:2998" {
		t.Fatalf("resolve: %v, %v", ap, err)
	}
	var ue usageError
	if _, err := resolve(context.Background(), "no-port"); !errors.As(err, &ue) {
		t.Fatalf("malformed address: %v (%T), want a usage error", err, err)
	}
}
