package pki

import (
	"bytes"
	"crypto/x509"
	"slices"
	"time"
)

// RenewAt is when c should be replaced: once less than fraction of its lifetime remains.
func RenewAt(c *x509.Certificate, fraction float64) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotAfter.Add(-time.Duration(float64(life) * fraction))
}

// NeedsRenewal reports whether c is due for replacement at now (including when it is expired or
// not yet valid, which means a clock or issuance problem that a fresh certificate fixes).
func NeedsRenewal(c *x509.Certificate, fraction float64, now time.Time) bool {
	return !now.Before(RenewAt(c, fraction)) || now.Before(c.NotBefore)
}

// Expired reports whether c is past its NotAfter at now.
func Expired(c *x509.Certificate, now time.Time) bool { return now.After(c.NotAfter) }

// MergeBundle returns the CAs from the lists, in order, without duplicates and without CAs expired at
// now. During a CA rotation the new CA is listed first and the old ones stay until they expire, so a
// replica still serving a certificate from the old CA keeps being trusted.
func MergeBundle(now time.Time, lists ...[]*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, l := range lists {
		for _, c := range l {
			if c == nil || Expired(c, now) {
				continue
			}
			if slices.ContainsFunc(out, func(o *x509.Certificate) bool { return bytes.Equal(o.Raw, c.Raw) }) {
				continue
			}
			out = append(out, c)
		}
	}
	return out
}

// Trusts reports whether a client trusting the PEM bundle would accept leaf for server auth at now.
// It is the same check an API server makes before calling the webhook.
func Trusts(bundlePEM []byte, leaf *x509.Certificate, now time.Time) bool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundlePEM) {
		return false
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}
