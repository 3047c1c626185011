package tlsconn_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gochirp/chirp/tlsconn"
	"github.com/gochirp/chirp/tlsconn/pki"
)

// chanLoop is the smallest Loop: closures queued on a channel and run by
// whoever ranges over it.
type chanLoop chan func()

func (l chanLoop) Submit(f func()) error { l <- f; return nil }

// load writes a node's combined PEM file, as libchirp's CERT_CHAIN_PEM, and
// loads it.
func load(dir string, ca *pki.CA, name string) *tlsconn.Credentials {
	node, err := ca.Issue(name, pki.Spec{})
	if err != nil {
		panic(err)
	}
	data, err := ca.ChainPEM(node)
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		panic(err)
	}
	creds, err := tlsconn.Load(path)
	if err != nil {
		panic(err)
	}
	return creds
}

// Two sessions on one loop, each one's ciphertext fed to the other: the
// client writes once its handshake is done, the server delivers the
// plaintext.
func ExampleNewSession() {
	dir, _ := os.MkdirTemp("", "tlsconn-example")
	defer os.RemoveAll(dir)
	ca, err := pki.NewCA("example CA", pki.Spec{})
	if err != nil {
		panic(err)
	}
	alice, bob := load(dir, ca, "alice"), load(dir, ca, "bob")

	loop := make(chanLoop, 64)
	var client, server *tlsconn.Session
	finished := false
	onPlaintext := func(p []byte) {
		fmt.Printf("server got %q over %s\n", p, tls.VersionName(server.State().Version))
		finished = true
	}
	server = tlsconn.NewSession(loop, bob.ServerConfig(), false, 5*time.Second,
		func(ciphertext []byte) error {
			return client.Feed(ciphertext, func(p []byte) { fmt.Printf("client got %q\n", p) })
		},
		func(err error) {
			if err != nil {
				fmt.Println("server:", err)
			}
		})
	client = tlsconn.NewSession(loop, alice.ClientConfig(), true, 5*time.Second,
		func(ciphertext []byte) error { return server.Feed(ciphertext, onPlaintext) },
		func(err error) {
			if err != nil {
				fmt.Println("client:", err)
				return
			}
			if err := client.Writev([][]byte{[]byte("hello, "), []byte("bob")}); err != nil {
				fmt.Println("client:", err)
			}
		})

	for f := range loop { // the event loop
		f()
		if finished {
			break
		}
	}
	client.Close()
	server.Close()
	// Output: server got "hello, bob" over TLS 1.3
}
