package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// served is the certificate this replica hands out in TLS handshakes. Swapping it is one atomic store,
// so a rotation never blocks or fails a handshake in progress: connections already open keep the
// certificate they negotiated, new ones get the new certificate.
type served struct {
	cert atomic.Pointer[tls.Certificate]
	// waiting says what an empty holder is waiting for, for handshake errors and readiness.
	waiting string
}

// set installs c unless it is the certificate already served; it reports whether it changed.
func (s *served) set(c *tls.Certificate) bool {
	if old := s.cert.Load(); old != nil && len(old.Certificate) > 0 && len(c.Certificate) > 0 &&
		string(old.Certificate[0]) == string(c.Certificate[0]) {
		return false
	}
	s.cert.Store(c)
	observeServed(c)
	return true
}

// GetCertificate is tls.Config.GetCertificate.
func (s *served) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate loaded yet: " + s.waiting)
}

// check is the certificate half of readiness: something valid is loaded.
func (s *served) check(now time.Time) (*tls.Certificate, error) {
	c := s.cert.Load()
	if c == nil || c.Leaf == nil {
		return nil, errors.New("no serving certificate loaded yet: " + s.waiting)
	}
	if now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("serving certificate expired at %s: %s", c.Leaf.NotAfter.Format(time.RFC3339), s.waiting)
	}
	return c, nil
}
