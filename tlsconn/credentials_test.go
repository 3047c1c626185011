package tlsconn

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gochirp/chirp/tlsconn/pki"
)

// legacyKeyPEM encodes a key the way older openssl commands write it:
// PKCS#1 for RSA, SEC1 for ECDSA.
func legacyKeyPEM(t *testing.T, id *pki.Identity) []byte {
	t.Helper()
	switch k := id.Key.(type) {
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	t.Fatalf("key type %T", id.Key)
	return nil
}

func TestLoadAcceptsAnyOrderAndKeyEncoding(t *testing.T) {
	for _, spec := range []pki.Spec{{Key: pki.ECDSA}, {Key: pki.RSA}} {
		ca := newCA(t, spec)
		id := issue(t, ca, "node", spec)
		key, legacy := keyPEM(t, id), legacyKeyPEM(t, id)
		leaf, root := pki.CertPEM(id.Cert), pki.CertPEM(ca.Cert)
		ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
		cases := map[string][][]byte{
			"libchirp order":      {key, leaf, root},
			"legacy key encoding": {legacy, leaf, root},
			"CA first":            {root, leaf, key},
			"key in the middle":   {leaf, key, root},
			"with EC PARAMETERS":  {ecParams, legacy, leaf, root},
		}
		for name, blocks := range cases {
			c, err := Load(writePEM(t, blocks...))
			if err != nil {
				t.Errorf("%s %s: %v", spec.Key, name, err)
				continue
			}
			if !c.Leaf().Equal(id.Cert) {
				t.Errorf("%s %s: leaf is %q, want the node certificate", spec.Key, name, c.Leaf().Subject)
			}
			chain := c.ServerConfig().Certificates[0].Certificate
			if len(chain) != 2 || !ca.Cert.Equal(mustParse(t, chain[1])) {
				t.Errorf("%s %s: chain of %d, want node then CA", spec.Key, name, len(chain))
			}
		}
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadErrorsNameFileAndProblem(t *testing.T) {
	ca := newCA(t, pki.Spec{})
	id := issue(t, ca, "node", pki.Spec{})
	other := issue(t, ca, "other node", pki.Spec{})
	key, leaf, root := keyPEM(t, id), pki.CertPEM(id.Cert), pki.CertPEM(ca.Cert)
	cases := []struct {
		name   string
		path   string
		reason string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope.pem"), "no such file"},
		{"empty file", writePEM(t), "no private key"},
		{"no key", writePEM(t, leaf, root), "no private key"},
		{"no certificate", writePEM(t, key), "no certificate"},
		{"key of another certificate", writePEM(t, keyPEM(t, other), leaf, root), "does not match"},
		{"no CA", writePEM(t, key, leaf), "no CA certificate"},
		{"no CA, only another node", writePEM(t, key, leaf, pki.CertPEM(other.Cert)), "no CA certificate"},
		{"two keys", writePEM(t, key, keyPEM(t, other), leaf, root), "more than one private key"},
		{"broken certificate", writePEM(t, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), root), "PEM block 2"},
		{"encrypted key", writePEM(t, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")}), leaf, root), "encrypted"},
	}
	for _, c := range cases {
		_, err := Load(c.path)
		if !errors.Is(err, ErrCredentials) {
			t.Errorf("%s: %v, want ErrCredentials", c.name, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.path) || !strings.Contains(msg, c.reason) {
			t.Errorf("%s: %q does not name the file and %q", c.name, msg, c.reason)
		}
	}
}

func TestConfigsFollowLibchirp(t *testing.T) {
	n := newNodes(t, pki.Spec{})
	s, c := n.a.ServerConfig(), n.a.ClientConfig()
	if s.MinVersion != tls.VersionTLS12 || c.MinVersion != tls.VersionTLS12 {
		t.Error("minimum version is not TLS 1.2")
	}
	if s.ClientAuth != tls.RequireAnyClientCert || s.VerifyConnection == nil {
		t.Error("server does not require and verify a client certificate")
	}
	if !c.InsecureSkipVerify || c.VerifyConnection == nil || c.ServerName != "" {
		t.Error("client must skip the host name check, verify the chain, send no SNI")
	}
}

func TestIsLocalIsExactlyLibchirpsRule(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1":        true,
		"::1":              true,
		"::1%lo":           true,
		"127.0.0.2":        false,
		"::ffff:127.0.0.1": false,
		"0.0.0.0":          false,
		"::":               false,
		"192.168.1.10":     false,
		"fe80::1":          false,
	}
	for s, want := range cases {
		if got := IsLocal(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsLocal(%s) = %v, want %v", s, got, want)
		}
	}
	if IsLocal(netip.Addr{}) {
		t.Error("IsLocal(zero Addr) = true")
	}
}
