package tlsconn

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// Credentials are a node's TLS identity and trust, read from libchirp's
// combined PEM file. They are immutable and safe for concurrent use.
type Credentials struct {
	cert tls.Certificate // leaf first, then the file's other certificates
	pool *x509.CertPool  // every certificate of the file, as in OpenSSL
}

// Load reads libchirp's CERT_CHAIN_PEM file: a private key (PKCS#1, PKCS#8
// or SEC1; RSA or ECDSA), the node's certificate and the CA's certificate,
// in any order. The node certificate is the one that matches the key; the
// others are sent to peers as its chain. Every certificate in the file is
// trusted as a root, as libchirp's SSL_CTX_load_verify_locations does, so a
// peer is accepted when its certificate chains to the CA.
//
// Errors wrap ErrCredentials and name the file and what is wrong with it.
func Load(chainPEMPath string) (*Credentials, error) {
	data, err := os.ReadFile(chainPEMPath)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read: %w", ErrCredentials, err)
	}
	c, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCredentials, chainPEMPath, err)
	}
	return c, nil
}

// parse builds Credentials from the contents of a combined PEM file.
func parse(data []byte) (*Credentials, error) {
	var (
		key   crypto.Signer
		certs []*x509.Certificate
	)
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM block %d: %w", n, err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if key != nil {
				return nil, fmt.Errorf("PEM block %d: more than one private key", n)
			}
			k, err := parseKey(b)
			if err != nil {
				return nil, fmt.Errorf("PEM block %d: %w", n, err)
			}
			key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("PEM block %d: encrypted private keys are not supported", n)
		}
		// Other blocks (EC PARAMETERS from openssl ecparam, DH PARAMETERS)
		// carry nothing a node needs.
	}
	switch {
	case key == nil:
		return nil, errors.New("no private key")
	case len(certs) == 0:
		return nil, errors.New("no certificate")
	}

	leaf := -1
	for i, c := range certs {
		if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(c.PublicKey) {
			leaf = i
			break
		}
	}
	if leaf < 0 {
		return nil, errors.New("the private key does not match any certificate")
	}
	cred := &Credentials{
		cert: tls.Certificate{PrivateKey: key, Leaf: certs[leaf]},
		pool: x509.NewCertPool(),
	}
	cred.cert.Certificate = append(cred.cert.Certificate, certs[leaf].Raw)
	hasCA := false
	for i, c := range certs {
		cred.pool.AddCert(c)
		if i == leaf {
			continue
		}
		cred.cert.Certificate = append(cred.cert.Certificate, c.Raw)
		if c.IsCA || c.CheckSignatureFrom(c) == nil {
			hasCA = true
		}
	}
	if !hasCA {
		return nil, errors.New("no CA certificate (none besides the node certificate is a CA or self-signed)")
	}
	return cred, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", k)
	}
	return s, nil
}

// Leaf is the node's own certificate.
func (c *Credentials) Leaf() *x509.Certificate { return c.cert.Leaf }

// ServerConfig is the crypto/tls configuration for accepted connections:
// TLS 1.2 or later, a client certificate required and verified against the
// file's certificates, no host name checked.
func (c *Credentials) ServerConfig() *tls.Config {
	cfg := c.config()
	cfg.ClientAuth = tls.RequireAnyClientCert
	// libchirp never resumes sessions; tickets would cost every handshake an
	// encryption and a message for nothing.
	cfg.SessionTicketsDisabled = true
	return cfg
}

// ClientConfig is the crypto/tls configuration for dialed connections: the
// server's certificate verified against the file's certificates, no host
// name checked and no SNI sent (libchirp does neither).
func (c *Credentials) ClientConfig() *tls.Config {
	cfg := c.config()
	// The host name check is what InsecureSkipVerify turns off; the chain
	// is still verified, by VerifyConnection.
	cfg.InsecureSkipVerify = true
	// Send the node certificate whatever CA names the server lists: Go's
	// default would send none if they did not match, and the server would
	// only say "certificate required".
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &c.cert, nil
	}
	return cfg
}

func (c *Credentials) config() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		Certificates:     []tls.Certificate{c.cert},
		VerifyConnection: c.verifyPeer,
		// Full-size records from the first byte: chirp is not a browser
		// waiting for the first paint, and every record is a write.
		DynamicRecordSizingDisabled: true,
	}
}

// verifyPeer accepts a peer whose certificate chains to one of the file's
// certificates, whatever its host names and extended key usages (libchirp's
// test certificates are X.509 v1 without extensions).
func (c *Credentials) verifyPeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer sent no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         c.pool,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("peer certificate %q: %w", cs.PeerCertificates[0].Subject, err)
	}
	return nil
}

var (
	loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loopback6 = netip.IPv6Loopback()
)

// IsLocal reports whether a connection to or from a is left unencrypted by
// libchirp's rule: exactly 127.0.0.1 or ::1. Other loopback addresses
// (127.0.0.2) and the v4-mapped ::ffff:127.0.0.1 are not local. A zone is
// ignored, as the address text libchirp compares has none.
func IsLocal(a netip.Addr) bool {
	a = a.WithZone("")
	return a == loopback4 || a == loopback6
}
