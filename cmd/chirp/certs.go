package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gochirp/chirp/tlsconn/pki"
)

func init() {
	register(&command{
		name:    "certs",
		args:    "-dir DIR [-nodes N] [-days D] [-key ecdsa|rsa] [-rsa-bits BITS] [-force]",
		summary: "make a CA and per-node TLS credentials (CERT_CHAIN_PEM files) for chirp nodes",
		notes:   certsNotes,
		setup:   setupCerts,
	})
}

// certsNotes is printed after the flags by "chirp certs -h".
const certsNotes = `
Each DIR/nodeN.pem is what a node's CERT_CHAIN_PEM names, for Go and C
libchirp nodes alike: the node's private key, its certificate signed by the
CA, then the CA certificate. A node trusts every certificate in its file, so
the nodes of one run accept each other; host names are not checked. DIR/ca.pem
holds the CA certificate alone. The CA's private key is not kept: nodes added
later need a new set. Node files are readable by their owner only.

A C libchirp node with encryption also needs DH_PARAMS_PEM, which only TLS 1.2
uses; Go nodes ignore it. Make one (it takes a while) with
    openssl dhparam -out DIR/dh.pem 2048
Go and C nodes always agree on TLS 1.3, so the C side needs OpenSSL 1.1.1 or
later.
`

// certsOptions are the knobs of certs.
type certsOptions struct {
	dir     string
	nodes   int
	days    int
	key     string
	rsaBits int
	force   bool
}

func setupCerts(fs *flag.FlagSet) func(stdio, []string) error {
	var o certsOptions
	fs.StringVar(&o.dir, "dir", "", "directory to write ca.pem and node1.pem..nodeN.pem to (created if missing; required)")
	fs.IntVar(&o.nodes, "nodes", 2, "number of node credential files")
	fs.IntVar(&o.days, "days", 365, "days the certificates are valid")
	fs.StringVar(&o.key, "key", string(pki.ECDSA), "key type: ecdsa (P-256) or rsa")
	fs.IntVar(&o.rsaBits, "rsa-bits", pki.MinRSABits, "RSA key size with -key rsa")
	fs.BoolVar(&o.force, "force", false, "overwrite existing files")
	return func(s stdio, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("unexpected arguments %q", args)}
		}
		return makeCerts(s.out, o)
	}
}

// makeCerts creates the CA and node files described by o and lists them on w.
// Nothing is written if a file exists (without force) or a key cannot be made.
func makeCerts(w io.Writer, o certsOptions) error {
	switch {
	case o.dir == "":
		return usageError{"-dir is required"}
	case o.nodes < 1 || o.nodes > 10000:
		return usageError{fmt.Sprintf("-nodes %d: want 1 to 10000", o.nodes)}
	case o.days < 1:
		return usageError{fmt.Sprintf("-days %d: want at least 1", o.days)}
	case o.key != string(pki.ECDSA) && o.key != string(pki.RSA):
		return usageError{fmt.Sprintf("-key %q: want ecdsa or rsa", o.key)}
	case o.key == string(pki.RSA) && (o.rsaBits < pki.MinRSABits || o.rsaBits > 16384):
		return usageError{fmt.Sprintf("-rsa-bits %d: want %d to 16384", o.rsaBits, pki.MinRSABits)}
	}

	type file struct {
		name, what string
		data       []byte
		perm       fs.FileMode
	}
	files := []file{{name: "ca.pem", what: "CA certificate", perm: 0o644}}
	for i := 1; i <= o.nodes; i++ {
		files = append(files, file{name: fmt.Sprintf("node%d.pem", i), what: "key, node certificate, CA certificate", perm: 0o600})
	}
	if !o.force {
		for _, f := range files {
			path := filepath.Join(o.dir, f.name)
			if _, err := os.Lstat(path); err == nil {
				return fmt.Errorf("%s exists; use -force to overwrite", path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}

	now := time.Now()
	spec := pki.Spec{
		Key:       pki.KeyType(o.key),
		RSABits:   o.rsaBits,
		NotBefore: now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:  now.AddDate(0, 0, o.days),
	}
	ca, err := pki.NewCA("chirp CA", spec)
	if err != nil {
		return err
	}
	files[0].data = pki.CertPEM(ca.Cert)
	for i := 1; i <= o.nodes; i++ {
		node, err := ca.Issue(fmt.Sprintf("chirp node %d", i), spec)
		if err != nil {
			return err
		}
		if files[i].data, err = ca.ChainPEM(node); err != nil {
			return err
		}
	}

	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(o.dir, f.name)
		if err := writeFileAtomic(path, f.data, f.perm); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s (%s)\n", path, f.what)
	}
	fmt.Fprintf(w, "C libchirp nodes also need DH_PARAMS_PEM: openssl dhparam -out %s 2048 (Go ignores it)\n",
		filepath.Join(o.dir, "dh.pem"))
	return nil
}

// writeFileAtomic writes data to a new file beside path and renames it over
// path, so a reader never sees half a key and a replaced file gets perm.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
