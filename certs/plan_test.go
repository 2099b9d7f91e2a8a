package certs

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshwarden/meshwarden/certs/pki"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var testPolicy = Policy{
	CAValidity: 100 * time.Hour, CertValidity: 10 * time.Hour, RenewFraction: 1.0 / 3,
	Names: pki.ServiceNames("wh", "mw", []string{"127.0.0.1"}), CommonName: "wh.mw.svc",
}

// outcome describes Plan's result relative to its input, so tests can name certificates.
type outcome struct {
	Signer, Next, Serving string
	Bundle                []string
	Action                string // first action, up to its first colon
}

func describe(cur, next State, actions []string) outcome {
	same := func(a, b *pki.KeyPair) bool { return a != nil && b != nil && bytes.Equal(a.CertPEM, b.CertPEM) }
	label := func(kp *pki.KeyPair) string {
		switch {
		case kp == nil:
			return ""
		case same(kp, cur.Signer):
			return "old signer"
		case same(kp, cur.Next):
			return "old next"
		}
		return "new"
	}
	o := outcome{Signer: label(next.Signer), Next: label(next.Next)}
	switch {
	case next.Serving == nil:
	case same(next.Serving, cur.Serving):
		o.Serving = "kept"
	case next.Serving.Cert.CheckSignatureFrom(next.Signer.Cert) == nil:
		o.Serving = "new from signer"
	default:
		o.Serving = "new from elsewhere"
	}
	for _, c := range next.Bundle {
		l := "other"
		for _, kp := range []*pki.KeyPair{next.Signer, next.Next, cur.Signer, cur.Next} {
			if kp != nil && bytes.Equal(kp.Cert.Raw, c.Raw) {
				l = label(kp)
				break
			}
		}
		o.Bundle = append(o.Bundle, l)
	}
	if len(actions) > 0 {
		o.Action, _, _ = strings.Cut(actions[0], ":")
	}
	return o
}

// fixture builds a consistent state issued at `at` with the given validities.
func fixture(t *testing.T, at time.Time, caValidity, certValidity time.Duration) State {
	t.Helper()
	ca, err := pki.NewCA("ca", caValidity, at)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.IssueServing("wh.mw.svc", testPolicy.Names, certValidity, at)
	if err != nil {
		t.Fatal(err)
	}
	return State{Signer: ca, Serving: s, Bundle: []*x509.Certificate{ca.Cert}}
}

func TestPlan(t *testing.T) {
	fresh := fixture(t, t0, 100*time.Hour, 10*time.Hour)
	other := fixture(t, t0, 100*time.Hour, 10*time.Hour)
	withNext := fixture(t, t0.Add(-80*time.Hour), 100*time.Hour, 10*time.Hour)
	nextCA, _ := pki.NewCA("next", 100*time.Hour, t0)
	withNext.Next = nextCA
	withNext.Serving, _ = withNext.Signer.IssueServing("wh.mw.svc", testPolicy.Names, 10*time.Hour, t0)
	withNext.Bundle = []*x509.Certificate{nextCA.Cert, withNext.Signer.Cert}
	wrongNames, _ := fresh.Signer.IssueServing("x", pki.ServiceNames("old", "mw", nil), 10*time.Hour, t0)
	lostNext, _ := pki.NewCA("replacement", 100*time.Hour, t0)
	lost := State{Next: lostNext, Bundle: []*x509.Certificate{lostNext.Cert, other.Signer.Cert}}
	expiredOld := fresh
	gone, _ := pki.NewCA("gone", time.Hour, t0.Add(-2*time.Hour))
	expiredOld.Bundle = []*x509.Certificate{fresh.Signer.Cert, gone.Cert}

	tests := map[string]struct {
		cur        State
		data       map[string][]byte // when set, parsed instead of cur
		at         time.Duration
		injected   bool
		clusterCAs []*x509.Certificate
		want       outcome
	}{
		"first start: CA, serving, bundle": {
			want: outcome{Signer: "new", Serving: "new from signer", Bundle: []string{"new"}, Action: "created CA meshwarden-webhook-ca-20260101T000000Z"},
		},
		"valid state: nothing to do": {
			cur: fresh, injected: true,
			want: outcome{Signer: "old signer", Serving: "kept", Bundle: []string{"old signer"}},
		},
		"empty pre-created Secret": {
			data: map[string][]byte{}, want: outcome{Signer: "new", Serving: "new from signer", Bundle: []string{"new"}, Action: "created CA meshwarden-webhook-ca-20260101T000000Z"},
		},
		"malformed Secret is repaired and says so": {
			data: map[string][]byte{KeySignerCert: []byte("junk"), KeySignerKey: []byte("junk"), "tls.crt": []byte("x"), KeyBundle: []byte("y")},
			want: outcome{Signer: "new", Serving: "new from signer", Bundle: []string{"new"}, Action: "repairing"},
		},
		"serving cert near expiry is renewed by the same CA": {
			cur: fresh, at: 7 * time.Hour, injected: true,
			want: outcome{Signer: "old signer", Serving: "new from signer", Bundle: []string{"old signer"}, Action: "issued serving certificate (less than 33% of its life left), valid until 2026-01-01T17"},
		},
		"serving cert from another CA is replaced": {
			cur:  State{Signer: fresh.Signer, Serving: other.Serving, Bundle: fresh.Bundle},
			want: outcome{Signer: "old signer", Serving: "new from signer", Bundle: []string{"old signer"}, Action: "issued serving certificate (not signed by the current CA), valid until 2026-01-01T10"},
		},
		"changed names are reissued": {
			cur:  State{Signer: fresh.Signer, Serving: wrongNames, Bundle: fresh.Bundle},
			want: outcome{Signer: "old signer", Serving: "new from signer", Bundle: []string{"old signer"}, Action: "issued serving certificate (DNS names or IPs changed), valid until 2026-01-01T10"},
		},
		"CA near expiry: new CA joins the bundle first, old one still signs": {
			cur: fresh, at: 70 * time.Hour, injected: true,
			want: outcome{Signer: "old signer", Next: "new", Serving: "new from signer", Bundle: []string{"new", "old signer"}, Action: "CA rotation"},
		},
		"pending CA waits until the caBundle carries it": {
			cur:  withNext,
			want: outcome{Signer: "old signer", Next: "old next", Serving: "kept", Bundle: []string{"old next", "old signer"}},
		},
		"pending CA promoted once injected; old CA stays trusted": {
			cur: withNext, injected: true,
			want: outcome{Signer: "old next", Serving: "new from signer", Bundle: []string{"old next", "old signer"}, Action: "CA rotation"},
		},
		"expired CA leaves the bundle": {
			cur: expiredOld, injected: true,
			want: outcome{Signer: "old signer", Serving: "kept", Bundle: []string{"old signer"}, Action: "updated CA bundle"},
		},
		"CA lost while the cluster trusts another: the new CA waits in the bundle": {
			data: map[string][]byte{}, clusterCAs: []*x509.Certificate{other.Signer.Cert},
			want: outcome{Next: "new", Bundle: []string{"new", "other"}, Action: "no usable CA in the Secret"},
		},
		"lost CA's replacement waits until injected": {
			cur: lost, clusterCAs: []*x509.Certificate{other.Signer.Cert},
			want: outcome{Next: "old next", Bundle: []string{"old next", "other"}},
		},
		"lost CA's replacement signs once injected": {
			cur: lost, clusterCAs: []*x509.Certificate{lostNext.Cert, other.Signer.Cert}, injected: true,
			want: outcome{Signer: "old next", Serving: "new from signer", Bundle: []string{"old next", "other"}, Action: "promoted the pending CA replacement to signer"},
		},
		"expired signer is replaced": {
			cur: fresh, at: 101 * time.Hour, injected: true, clusterCAs: []*x509.Certificate{other.Signer.Cert},
			want: outcome{Signer: "new", Serving: "new from signer", Bundle: []string{"new"}, Action: "CA expired"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cur, problems := tc.cur, []string(nil)
			if tc.data != nil {
				cur, problems = ParseState(tc.data)
			}
			next, actions, err := Plan(cur, problems, testPolicy, Observed{Now: t0.Add(tc.at), BundleInjected: tc.injected, ClusterCAs: tc.clusterCAs})
			if err != nil {
				t.Fatal(err)
			}
			got := describe(cur, next, actions)
			if strings.HasPrefix(got.Action, "issued serving") {
				got.Action = got.Action[:min(len(got.Action), len(tc.want.Action))]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Plan (-want +got):\n%s\nactions: %q", diff, actions)
			}
			// What Plan writes must parse back to the same state without problems.
			back, problems := ParseState(next.Data())
			if len(problems) > 0 || (next.Signer != nil && describe(next, back, nil).Signer != "old signer") {
				t.Errorf("round trip through Secret data: problems %q", problems)
			}
			if next.Serving != nil && !pki.Trusts(next.BundlePEM(), next.Serving.Cert, t0.Add(tc.at)) {
				t.Errorf("bundle does not trust the serving certificate")
			}
		})
	}
}

func TestParseStateProblems(t *testing.T) {
	s := fixture(t, t0, time.Hour, time.Hour)
	good := s.Data()
	tests := map[string]struct {
		mutate func(map[string][]byte)
		want   []string
	}{
		"complete":         {mutate: func(map[string][]byte) {}},
		"missing key":      {mutate: func(d map[string][]byte) { delete(d, KeySignerKey) }, want: []string{"ca-signer.crt/ca-signer.key unusable: private key is empty"}},
		"serving not a CA": {mutate: func(d map[string][]byte) { d[KeySignerCert], d[KeySignerKey] = d["tls.crt"], d["tls.key"] }, want: []string{"ca-signer.crt is not a CA certificate"}},
		"bundle garbage":   {mutate: func(d map[string][]byte) { d[KeyBundle] = []byte("x") }, want: []string{"ca.crt unusable: no PEM certificate found"}},
		"bundle empty":     {mutate: func(d map[string][]byte) { delete(d, KeyBundle) }, want: []string{"ca.crt is empty"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := map[string][]byte{}
			for k, v := range good {
				d[k] = v
			}
			tc.mutate(d)
			_, problems := ParseState(d)
			if diff := cmp.Diff(tc.want, problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNextCheck(t *testing.T) {
	s := fixture(t, t0, 100*time.Hour, 10*time.Hour)
	// The serving certificate (10h, backdated 1m) is due first: at 2/3 of its life.
	want := pki.RenewAt(s.Serving.Cert, testPolicy.RenewFraction)
	if got := NextCheck(s, testPolicy); !got.Equal(want) {
		t.Errorf("NextCheck = %s, want %s", got, want)
	}
	if got := NextCheck(State{}, testPolicy); !got.IsZero() {
		t.Errorf("NextCheck(empty) = %s, want zero", got)
	}
}
