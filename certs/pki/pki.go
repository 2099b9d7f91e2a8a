// Package pki issues and inspects the webhook's X.509 material: a self-signed CA, serving certificates
// it signs, PEM encoding, renewal timing and CA bundles. It does no I/O, so every rule about validity,
// names and rotation can be tested without a cluster.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// maxBackdate bounds how far NotBefore is set in the past, to tolerate clock skew between the
// issuer and the API servers that verify the certificate.
const maxBackdate = time.Minute

// KeyPair is a certificate with its private key, parsed and PEM-encoded.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// Names are the identities a serving certificate is valid for.
type Names struct {
	DNS []string
	IPs []net.IP
}

// ServiceNames returns the names a client may use to reach service in namespace
// (<svc>, <svc>.<ns>, <svc>.<ns>.svc) plus extras; an extra that parses as an IP becomes an IP SAN.
// Duplicates are dropped and the order is stable.
func ServiceNames(service, namespace string, extras []string) Names {
	var n Names
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s == "" {
			return
		}
		if ip := net.ParseIP(s); ip != nil {
			if !slices.ContainsFunc(n.IPs, ip.Equal) {
				n.IPs = append(n.IPs, ip)
			}
			return
		}
		if !slices.Contains(n.DNS, s) {
			n.DNS = append(n.DNS, s)
		}
	}
	if service != "" {
		add(service)
		if namespace != "" {
			add(service + "." + namespace)
			add(service + "." + namespace + ".svc")
		}
	}
	for _, e := range extras {
		add(e)
	}
	return n
}

// Covers reports whether c is valid for every name in n (it may carry more).
func (n Names) Covers(c *x509.Certificate) bool {
	for _, d := range n.DNS {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	for _, ip := range n.IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// NewCA creates a self-signed CA valid for validity from now.
func NewCA(commonName string, validity time.Duration, now time.Time) (*KeyPair, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("CA validity must be positive, got %s", validity)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"meshwarden"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return issue(tmpl, nil, validity, now)
}

// IssueServing signs a serving certificate for names, valid for validity from now but never past the
// CA's own expiry: a leaf that outlives its CA would fail verification anyway, and capping it lets the
// old CA leave the bundle once it expires.
func (ca *KeyPair) IssueServing(commonName string, names Names, validity time.Duration, now time.Time) (*KeyPair, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("certificate validity must be positive, got %s", validity)
	}
	if len(names.DNS) == 0 && len(names.IPs) == 0 {
		return nil, errors.New("a serving certificate needs at least one DNS name or IP address")
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"meshwarden"}},
		DNSNames:              slices.Clone(names.DNS),
		IPAddresses:           slices.Clone(names.IPs),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return issue(tmpl, ca, validity, now)
}

func issue(tmpl *x509.Certificate, parent *KeyPair, validity time.Duration, now time.Time) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-min(maxBackdate, validity/10)).UTC().Truncate(time.Second)
	tmpl.NotAfter = now.Add(validity).UTC().Truncate(time.Second)
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
		if tmpl.NotAfter.After(parent.Cert.NotAfter) {
			tmpl.NotAfter = parent.Cert.NotAfter
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ParseKeyPair parses a PEM certificate and key and checks that they belong together. Only the first
// certificate of certPEM is the leaf; the rest (a chain) is ignored.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	if len(bytes.TrimSpace(certPEM)) == 0 {
		return nil, errors.New("certificate is empty")
	}
	if len(bytes.TrimSpace(keyPEM)) == 0 {
		return nil, errors.New("private key is empty")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", pair.PrivateKey)
	}
	return &KeyPair{Cert: pair.Leaf, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// TLSCertificate converts the pair for a tls.Config.
func (kp *KeyPair) TLSCertificate() (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseCerts parses every CERTIFICATE block in data; other block types are skipped.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// EncodeCerts PEM-encodes certs in order.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}
