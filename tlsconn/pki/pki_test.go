package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssuedNodeChainsToCAWithBothUsages(t *testing.T) {
	for _, spec := range []Spec{{}, {Key: RSA, RSABits: 2048}} {
		ca, err := NewCA("ca", spec)
		if err != nil {
			t.Fatal(err)
		}
		if !ca.Cert.IsCA || ca.Cert.CheckSignatureFrom(ca.Cert) != nil {
			t.Fatalf("%q: CA certificate is not a self-signed CA", spec.Key)
		}
		node, err := ca.Issue("node 1", spec)
		if err != nil {
			t.Fatal(err)
		}
		if node.Cert.IsCA || node.Cert.CheckSignatureFrom(ca.Cert) != nil {
			t.Fatalf("%q: node certificate is not signed by the CA", spec.Key)
		}
		want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		if !slices.Equal(node.Cert.ExtKeyUsage, want) {
			t.Errorf("%q: extended key usages %v, want %v", spec.Key, node.Cert.ExtKeyUsage, want)
		}
		if k, ok := node.Key.(*rsa.PrivateKey); ok && k.N.BitLen() != 2048 {
			t.Errorf("RSA key of %d bits", k.N.BitLen())
		}

		chain, err := ca.ChainPEM(node)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for b, rest := pem.Decode(chain); b != nil; b, rest = pem.Decode(rest) {
			types = append(types, b.Type)
		}
		if strings.Join(types, ",") != "PRIVATE KEY,CERTIFICATE,CERTIFICATE" {
			t.Errorf("%q: chain file holds %v, want key, node, CA", spec.Key, types)
		}
	}
}

func TestBadSpecsAreRefused(t *testing.T) {
	now := time.Now()
	for name, spec := range map[string]Spec{
		"short RSA key":    {Key: RSA, RSABits: 1024},
		"unknown key type": {Key: "dsa"},
		"ends before":      {NotBefore: now, NotAfter: now.Add(-time.Second)},
	} {
		if _, err := NewCA("ca", spec); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
