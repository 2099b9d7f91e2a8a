package certs

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/meshwarden/meshwarden/certs/pki"
)

// Policy is what the self-mode writer keeps true about the Secret.
type Policy struct {
	CAValidity    time.Duration
	CertValidity  time.Duration
	RenewFraction float64
	Names         pki.Names
	// CommonName of the serving certificate (the Service's cluster DNS name).
	CommonName string
}

// caCommonName is the self-signed CA's subject; the issue time keeps successive CAs apart in logs.
func caCommonName(now time.Time) string {
	return "meshwarden-webhook-ca-" + now.UTC().Format("20060102T150405Z")
}

// Observed is what the writer saw in the cluster besides the Secret.
type Observed struct {
	Now time.Time
	// BundleInjected says every webhook configuration's caBundle carries the Secret's whole bundle.
	BundleInjected bool
	// ClusterCAs are the valid CAs the webhook configurations trust now. When the Secret lost its CA
	// (deleted, emptied) while replicas keep serving from memory, they stay in the bundle so those
	// replicas stay trusted until the new CA signs.
	ClusterCAs []*x509.Certificate
}

// Plan decides the next Secret content from the current one. It is a pure function of its inputs
// (apart from key generation), which is what makes every rotation rule unit-testable.
//
// A new CA first goes into Next; it is promoted to signer only once obs.BundleInjected, so no replica
// ever serves a certificate the API server does not yet trust. The exceptions are a first start (the
// cluster trusts no CA yet) and an expired CA (nothing can be trusted anyway). actions says, in words,
// what changed (empty: nothing).
func Plan(cur State, problems []string, p Policy, obs Observed) (next State, actions []string, err error) {
	now := obs.Now
	next = cur
	if len(problems) > 0 {
		actions = append(actions, "repairing: "+joinProblems(problems))
	}
	expired := false
	if next.Signer != nil && pki.Expired(next.Signer.Cert, now) {
		actions = append(actions, "CA expired: replacing it")
		next.Signer, expired = nil, true
	}
	if next.Next != nil && pki.Expired(next.Next.Cert, now) {
		next.Next = nil
	}
	// Replicas may be serving from a CA the Secret no longer holds: roll the new one in like a rotation.
	protect := !expired && len(obs.ClusterCAs) > 0
	var carry []*x509.Certificate
	switch {
	case next.Signer == nil && next.Next != nil && (obs.BundleInjected || !protect):
		next.Signer, next.Next = next.Next, nil
		actions = append(actions, "promoted the pending CA "+next.Signer.Cert.Subject.CommonName+" to signer")
	case next.Signer == nil && next.Next != nil:
		// Waiting for the caBundle to carry the pending CA.
	case next.Signer == nil:
		ca, err := pki.NewCA(caCommonName(now), p.CAValidity, now)
		if err != nil {
			return cur, nil, err
		}
		if protect {
			next.Next, carry = ca, obs.ClusterCAs
			actions = append(actions, "no usable CA in the Secret: new CA "+ca.Cert.Subject.CommonName+
				" joins the CAs the webhook configurations trust now; it signs once they carry it")
		} else {
			next.Signer = ca
			actions = append(actions, "created CA "+ca.Cert.Subject.CommonName)
		}
	case next.Next != nil && obs.BundleInjected:
		next.Signer, next.Next = next.Next, nil
		actions = append(actions, "CA rotation: new CA "+next.Signer.Cert.Subject.CommonName+" now signs, the old one stays trusted until it expires")
	case next.Next == nil && pki.NeedsRenewal(next.Signer.Cert, p.RenewFraction, now):
		ca, err := pki.NewCA(caCommonName(now), p.CAValidity, now)
		if err != nil {
			return cur, nil, err
		}
		next.Next = ca
		actions = append(actions, "CA rotation: added new CA "+ca.Cert.Subject.CommonName+" to the bundle; it signs once every webhook configuration trusts it")
	}
	if next.Signer == nil {
		// Nothing can sign yet; keep whatever serving pair there is for replicas that load it.
		bundle := pki.MergeBundle(now, []*x509.Certificate{next.Next.Cert}, cur.Bundle, carry)
		if !sameCerts(bundle, cur.Bundle) {
			next.Bundle = bundle
		}
		return next, actions, nil
	}
	if reason := servingProblem(next.Serving, next.Signer, p, now); reason != "" {
		s, err := next.Signer.IssueServing(p.CommonName, p.Names, p.CertValidity, now)
		if err != nil {
			return cur, nil, err
		}
		next.Serving = s
		actions = append(actions, "issued serving certificate ("+reason+"), valid until "+s.Cert.NotAfter.Format(time.RFC3339))
	}
	var pending []*x509.Certificate
	if next.Next != nil {
		pending = []*x509.Certificate{next.Next.Cert}
	}
	bundle := pki.MergeBundle(now, pending, []*x509.Certificate{next.Signer.Cert}, cur.Bundle)
	if !sameCerts(bundle, cur.Bundle) {
		next.Bundle = bundle
		if len(actions) == 0 {
			actions = append(actions, "updated CA bundle")
		}
	}
	return next, actions, nil
}

// servingProblem says why serving must be reissued, or "" when it is fine.
func servingProblem(serving, signer *pki.KeyPair, p Policy, now time.Time) string {
	switch {
	case serving == nil:
		return "none usable"
	case serving.Cert.CheckSignatureFrom(signer.Cert) != nil:
		return "not signed by the current CA"
	case !p.Names.Covers(serving.Cert):
		return "DNS names or IPs changed"
	case pki.NeedsRenewal(serving.Cert, p.RenewFraction, now):
		return fmt.Sprintf("less than %.0f%% of its life left", p.RenewFraction*100)
	}
	return ""
}

// NextCheck is when Plan will next have something to do for s if nothing else changes.
func NextCheck(s State, p Policy) time.Time {
	var times []time.Time
	due := []*pki.KeyPair{s.Serving}
	if s.Next == nil {
		// With a rotation in flight the signer's renewal is already under way; the writer polls for it.
		due = append(due, s.Signer)
	}
	for _, kp := range due {
		if kp != nil {
			times = append(times, pki.RenewAt(kp.Cert, p.RenewFraction))
		}
	}
	for _, c := range s.Bundle {
		times = append(times, c.NotAfter.Add(time.Second))
	}
	if len(times) == 0 {
		return time.Time{}
	}
	return slices.MinFunc(times, func(a, b time.Time) int { return a.Compare(b) })
}

func sameCerts(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return bytes.Equal(x.Raw, y.Raw) })
}

func joinProblems(p []string) string {
	out := ""
	for i, s := range p {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}
