package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gochirp/chirp/tlsconn"
)

// handshake runs a TLS handshake between two nodes' credentials over an
// in-memory connection and returns the server's view of it.
func handshake(t *testing.T, server, client *tlsconn.Credentials) tls.ConnectionState {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	deadline := time.Now().Add(10 * time.Second)
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	ts, tc := tls.Server(sc, server.ServerConfig()), tls.Client(cc, client.ClientConfig())
	clientErr := make(chan error, 1)
	go func() { clientErr <- tc.Handshake() }()
	if err := ts.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := <-clientErr; err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	return ts.ConnectionState()
}

func TestCertsMakesNodesThatAcceptEachOther(t *testing.T) {
	for _, key := range [][]string{{"-key", "ecdsa"}, {"-key", "rsa", "-rsa-bits", "2048"}} {
		dir := filepath.Join(t.TempDir(), "pki")
		args := append([]string{"certs", "-dir", dir, "-nodes", "3", "-days", "30"}, key...)
		code, stdout, stderr := runCapture(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if !strings.Contains(stdout, "node3.pem") || !strings.Contains(stdout, "openssl dhparam") {
			t.Errorf("%v: output does not list the files and the DH hint:\n%s", args, stdout)
		}

		nodes := make([]*tlsconn.Credentials, 3)
		for i := range nodes {
			path := filepath.Join(dir, fmt.Sprintf("node%d.pem", i+1))
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v, mode %v; want a 0600 file", path, err, fi.Mode())
			}
			c, err := tlsconn.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Until(c.Leaf().NotAfter); d < 29*24*time.Hour || d > 31*24*time.Hour {
				t.Errorf("%s: valid for %v more, want 30 days", path, d)
			}
			nodes[i] = c
		}
		st := handshake(t, nodes[0], nodes[2])
		if st.Version != tls.VersionTLS13 || st.PeerCertificates[0].Subject.CommonName != "chirp node 3" {
			t.Errorf("%v: handshake gave version %x with %q", args, st.Version, st.PeerCertificates[0].Subject)
		}
		if _, err := os.Stat(filepath.Join(dir, "ca.pem")); err != nil {
			t.Error(err)
		}
	}
}

func TestCertsRefusesToOverwriteWithoutForce(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCapture(t, "", "certs", "-dir", dir, "-nodes", "1"); code != 0 {
		t.Fatalf("first run: %s", stderr)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "node1.pem"))

	code, _, stderr := runCapture(t, "", "certs", "-dir", dir, "-nodes", "1")
	if code != 1 || !strings.Contains(stderr, "exists") || !strings.Contains(stderr, "-force") {
		t.Fatalf("second run: exit %d, %q; want 1 and a hint at -force", code, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "node1.pem")); !bytes.Equal(before, after) {
		t.Fatal("node1.pem changed without -force")
	}

	if code, _, stderr := runCapture(t, "", "certs", "-dir", dir, "-nodes", "1", "-force"); code != 0 {
		t.Fatalf("-force: %s", stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "node1.pem")); bytes.Equal(before, after) {
		t.Fatal("-force did not replace node1.pem")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestCertsRejectsBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"certs"},
		{"certs", "-dir", dir, "-key", "dsa"},
		{"certs", "-dir", dir, "-key", "rsa", "-rsa-bits", "1024"},
		{"certs", "-dir", dir, "-nodes", "0"},
		{"certs", "-dir", dir, "-days", "0"},
		{"certs", "-dir", dir, "extra"},
	} {
		if code, _, stderr := runCapture(t, "", args...); code != 2 || !strings.HasSuffix(stderr, "\nrun 'chirp certs -h' for usage\n") ||
			strings.Count(stderr, "\n") != 2 {
			t.Errorf("%q: exit %d, %q; want 2, the problem and where the usage is", args, code, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bad flags wrote %d files", len(entries))
	}
}

func TestCertsHelpMentionsDHParams(t *testing.T) {
	code, _, stderr := runCapture(t, "", "certs", "-h")
	if code != 0 || !strings.Contains(stderr, "openssl dhparam") || !strings.Contains(stderr, "-rsa-bits") {
		t.Fatalf("chirp certs -h: exit %d:\n%s", code, stderr)
	}
}
