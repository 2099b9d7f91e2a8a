package certs

import (
	"crypto/x509"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshwarden/meshwarden/certs/pki"
)

// Keys of the self-mode Secret. tls.crt/tls.key and ca.crt keep their usual meaning (serving pair and
// what clients should trust), so the Secret can also be mounted by anything that expects those.
const (
	// KeyBundle holds every CA clients must trust: the signer, a CA being rolled in, and older CAs
	// until they expire. It is what goes into the webhook configurations' caBundle.
	KeyBundle = "ca.crt"
	// KeySignerCert and KeySignerKey are the CA that signs the serving certificate.
	KeySignerCert = "ca-signer.crt"
	KeySignerKey  = "ca-signer.key"
	// KeyNextCert and KeyNextKey hold a new CA during a rotation, until the caBundle in the cluster
	// carries it; only then does it start signing.
	KeyNextCert = "ca-next.crt"
	KeyNextKey  = "ca-next.key"
)

// State is the parsed content of the self-mode Secret. A nil field is absent or unusable.
type State struct {
	Signer  *pki.KeyPair
	Next    *pki.KeyPair
	Serving *pki.KeyPair
	Bundle  []*x509.Certificate
}

// ParseState reads Secret data. It never fails: what cannot be used is left nil and described in
// problems, so the writer can repair it and say what it repaired.
func ParseState(data map[string][]byte) (s State, problems []string) {
	if len(data) == 0 {
		return s, nil
	}
	pair := func(certKey, keyKey string, optional bool) *pki.KeyPair {
		c, k := data[certKey], data[keyKey]
		if optional && len(c) == 0 && len(k) == 0 {
			return nil
		}
		kp, err := pki.ParseKeyPair(c, k)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s/%s unusable: %v", certKey, keyKey, err))
			return nil
		}
		return kp
	}
	// While a replacement CA waits in Next the signer may be absent (it was lost, see Plan).
	hasNext := len(data[KeyNextCert]) > 0 || len(data[KeyNextKey]) > 0
	s.Signer = pair(KeySignerCert, KeySignerKey, hasNext)
	if s.Signer != nil && !s.Signer.Cert.IsCA {
		problems = append(problems, KeySignerCert+" is not a CA certificate")
		s.Signer = nil
	}
	s.Next = pair(KeyNextCert, KeyNextKey, true)
	if s.Next != nil && !s.Next.Cert.IsCA {
		problems = append(problems, KeyNextCert+" is not a CA certificate")
		s.Next = nil
	}
	s.Serving = pair(corev1.TLSCertKey, corev1.TLSPrivateKeyKey, hasNext && len(data[KeySignerCert]) == 0)
	if b := data[KeyBundle]; len(b) > 0 {
		certs, err := pki.ParseCerts(b)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s unusable: %v", KeyBundle, err))
		}
		s.Bundle = certs
	} else {
		problems = append(problems, KeyBundle+" is empty")
	}
	return s, problems
}

// Data is the Secret data for s.
func (s State) Data() map[string][]byte {
	// tls.crt and tls.key are always present: a kubernetes.io/tls Secret requires both keys.
	d := map[string][]byte{KeyBundle: pki.EncodeCerts(s.Bundle...), corev1.TLSCertKey: {}, corev1.TLSPrivateKeyKey: {}}
	if s.Signer != nil {
		d[KeySignerCert], d[KeySignerKey] = s.Signer.CertPEM, s.Signer.KeyPEM
	}
	if s.Next != nil {
		d[KeyNextCert], d[KeyNextKey] = s.Next.CertPEM, s.Next.KeyPEM
	}
	if s.Serving != nil {
		d[corev1.TLSCertKey], d[corev1.TLSPrivateKeyKey] = s.Serving.CertPEM, s.Serving.KeyPEM
	}
	return d
}

// BundlePEM is the caBundle for webhook configurations.
func (s State) BundlePEM() []byte { return pki.EncodeCerts(s.Bundle...) }
