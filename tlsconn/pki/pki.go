// Package pki makes a certificate authority and node credentials in
// libchirp's combined PEM format (private key, node certificate, CA
// certificate in one file), for the chirp certs command and for tests. It
// is the Go counterpart of libchirp's mk/makepki and knows nothing of
// connections.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// KeyType is the kind of key pair a Spec makes.
type KeyType string

// The key types libchirp's OpenSSL and Go's crypto/tls both use.
const (
	ECDSA KeyType = "ecdsa" // ECDSA on P-256
	RSA   KeyType = "rsa"   // RSA, Spec.RSABits long
)

// MinRSABits is the shortest RSA key Spec accepts: OpenSSL's default
// security level refuses shorter ones.
const MinRSABits = 2048

// Spec says what key and validity period a certificate gets. Its zero value
// means an ECDSA P-256 key valid from an hour ago for a year.
type Spec struct {
	Key       KeyType   // "" means ECDSA
	RSABits   int       // 0 means MinRSABits
	NotBefore time.Time // zero means an hour ago (tolerates clock skew)
	NotAfter  time.Time // zero means NotBefore plus 365 days
}

// Identity is a key pair and its certificate.
type Identity struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CA is a self-signed certificate authority that issues node certificates.
type CA struct{ Identity }

// NewCA makes a self-signed CA certificate with the common name name.
func NewCA(name string, spec Spec) (*CA, error) {
	key, tmpl, err := spec.start(name)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	cert, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return &CA{Identity{Cert: cert, Key: key}}, nil
}

// Issue makes a node key pair and a certificate for it signed by ca. The
// certificate has the common name name, no host names, and both the
// serverAuth and clientAuth extended key usages, because a chirp node is a
// TLS server and client with the same credentials.
func (ca *CA) Issue(name string, spec Spec) (*Identity, error) {
	key, tmpl, err := spec.start(name)
	if err != nil {
		return nil, err
	}
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // TLS 1.2 RSA key exchange
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	cert, err := sign(tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	return &Identity{Cert: cert, Key: key}, nil
}

// start makes the key pair and the certificate template every certificate
// begins with.
func (s Spec) start(name string) (crypto.Signer, *x509.Certificate, error) {
	key, err := s.newKey()
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := s.template(name)
	if err != nil {
		return nil, nil, err
	}
	return key, tmpl, nil
}

// ChainPEM is the node file libchirp's CERT_CHAIN_PEM names: the node's
// private key (PKCS#8), its certificate, then the CA's certificate.
func (ca *CA) ChainPEM(node *Identity) ([]byte, error) {
	key, err := KeyPEM(node.Key)
	if err != nil {
		return nil, err
	}
	out := append(key, CertPEM(node.Cert)...)
	return append(out, CertPEM(ca.Cert)...), nil
}

// CertPEM encodes a certificate as a PEM CERTIFICATE block.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM encodes a private key as a PKCS#8 PEM PRIVATE KEY block, which
// both OpenSSL and Go read for RSA and ECDSA keys.
func KeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func (s Spec) newKey() (crypto.Signer, error) {
	switch s.Key {
	case "", ECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		bits := s.RSABits
		if bits == 0 {
			bits = MinRSABits
		}
		if bits < MinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: want at least %d", bits, MinRSABits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	}
	return nil, fmt.Errorf("unknown key type %q: want %q or %q", s.Key, ECDSA, RSA)
}

// template is the part of a certificate CA and node share.
func (s Spec) template(name string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	notBefore := s.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	notAfter := s.NotAfter
	if notAfter.IsZero() {
		notAfter = notBefore.AddDate(0, 0, 365)
	}
	if !notAfter.After(notBefore) {
		return nil, errors.New("certificate validity ends before it begins")
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"chirp"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, priv crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}
