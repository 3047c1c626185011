package main

import (
	"strings"
	"testing"
)

// TestRelayForwardsAndRoutesBack runs echo behind relay as a user would:
// request and send -echo through the relay get their answers, and the
// relay's summary counts them.
func TestRelayForwardsAndRoutesBack(t *testing.T) {
	for _, mode := range [][]string{nil, {"-async"}} {
		echo := startChirp(t, nil, serverArgs("echo", mode...)...)
		relay := startChirp(t, nil, serverArgs("relay", append([]string{"-to", echo.addr()}, mode...)...)...)
		if !strings.Contains(relay.errOut.String(), "node") || !strings.Contains(relay.errOut.String(), "to "+echo.addr()) {
			t.Errorf("relay's banner: %q", relay.errOut.String())
		}
		code, stdout, stderr := chirp(t, nil, "", "request", "-bind", "127.0.0.1", relay.addr(), "through the relay")
		if code != 0 || stdout != "through the relay\n" || stderr != "" {
			t.Fatalf("request via relay %v: exit %d, stdout %q, stderr %q", mode, code, stdout, stderr)
		}
		args := append([]string{"send", "-bind", "127.0.0.1", "-n", "50", "-concurrency", "4", "-echo"}, mode...)
		code, stdout, stderr = chirp(t, nil, "", append(args, relay.addr(), "x")...)
		if code != 0 || !strings.Contains(stdout, "50 ok, 0 failed") {
			t.Fatalf("send -echo via relay %v: exit %d, stdout %q, stderr %q", mode, code, stdout, stderr)
		}
		if code := relay.stop(t); code != 0 {
			t.Errorf("relay %v: exit %d: %s", mode, code, relay.errOut.String())
		}
		if want := "chirp relay: 51 forwarded, 51 replies, 0 failed, 0 unroutable\n"; !strings.HasSuffix(relay.errOut.String(), want) {
			t.Errorf("relay %v summary: %q, want %q", mode, relay.errOut.String(), want)
		}
	}
}

// TestRelayFailsWhatItCannotForward: a synchronous send through a relay
// whose target is gone fails (the relay never acknowledges it); it does
// not succeed.
func TestRelayFailsWhatItCannotForward(t *testing.T) {
	relay := startChirp(t, nil, serverArgs("relay", "-to", "127.0.0.1:1", "-timeout", "300ms")...)
	code, stdout, stderr := chirp(t, nil, "", "send", "-bind", "127.0.0.1", "-timeout", "500ms", relay.addr(), "lost?")
	if code != 1 || !strings.Contains(stdout, "0 ok, 1 failed") || !strings.Contains(stderr, "no answer from "+relay.addr()+" within 500ms") {
		t.Errorf("send via a relay to a closed port: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	relay.stop(t)
	if !strings.Contains(relay.errOut.String(), "0 forwarded, 0 replies, 1 failed") {
		t.Errorf("relay summary: %q", relay.errOut.String())
	}
}
