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

// Plan decides the next Secret content from the current one. It is a pure function of its inputs
// (apart from key generation), which is what makes every rotation rule unit-testable.
//
// bundleInjected says the caBundle of every webhook configuration already carries cur's whole bundle;
// a CA waiting in Next is only promoted to signer then, so no replica ever serves a certificate the
// API server does not yet trust. actions says, in words, what changed (empty: nothing).
func Plan(cur State, problems []string, p Policy, now time.Time, bundleInjected bool) (next State, actions []string, err error) {
	next = cur
	if len(problems) > 0 {
		actions = append(actions, "repairing: "+joinProblems(problems))
	}
	if next.Signer != nil && pki.Expired(next.Signer.Cert, now) {
		actions = append(actions, "CA expired: replacing it")
		next.Signer = nil
	}
	if next.Next != nil && pki.Expired(next.Next.Cert, now) {
		next.Next = nil
	}
	switch {
	case next.Signer == nil && next.Next != nil:
		// A pending CA is the best candidate left; promoting it keeps the bundle's trust in it.
		next.Signer, next.Next = next.Next, nil
		actions = append(actions, "signer CA missing: promoted the pending CA")
	case next.Signer == nil:
		ca, err := pki.NewCA(caCommonName(now), p.CAValidity, now)
		if err != nil {
			return cur, nil, err
		}
		next.Signer = ca
		actions = append(actions, "created CA "+ca.Cert.Subject.CommonName)
	case next.Next != nil && bundleInjected:
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
