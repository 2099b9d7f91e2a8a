package pki

import (
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestServiceNames(t *testing.T) {
	tests := map[string]struct {
		svc, ns string
		extras  []string
		want    Names
	}{
		"service names": {svc: "wh", ns: "mw", want: Names{DNS: []string{"wh", "wh.mw", "wh.mw.svc"}}},
		"extras incl. IPs, deduplicated": {
			svc: "wh", ns: "mw", extras: []string{"wh.mw.svc.cluster.local", "127.0.0.1", "::1", "wh", " ", "127.0.0.1"},
			want: Names{DNS: []string{"wh", "wh.mw", "wh.mw.svc", "wh.mw.svc.cluster.local"}, IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}},
		},
		"only extras": {extras: []string{"localhost"}, want: Names{DNS: []string{"localhost"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := ServiceNames(tc.svc, tc.ns, tc.extras)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ServiceNames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca, err := NewCA("meshwarden-ca", 10*365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	names := ServiceNames("wh", "mw", []string{"127.0.0.1"})
	leaf, err := ca.IssueServing("wh.mw.svc", names, 365*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	shortCA, err := NewCA("short", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	capped, err := shortCA.IssueServing("wh", names, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		IsCA     bool
		Lifetime time.Duration
		DNS      []string
		IPs      int
		Verifies bool
	}
	sum := func(c *x509.Certificate, bundle []byte) summary {
		return summary{c.IsCA, c.NotAfter.Sub(now), c.DNSNames, len(c.IPAddresses), Trusts(bundle, c, now)}
	}
	tests := map[string]struct {
		got, want summary
	}{
		"CA is 10 years":                {sum(ca.Cert, ca.CertPEM), summary{IsCA: true, Lifetime: 10 * 365 * 24 * time.Hour, Verifies: true}},
		"serving is 1 year with SANs":   {sum(leaf.Cert, ca.CertPEM), summary{Lifetime: 365 * 24 * time.Hour, DNS: []string{"wh", "wh.mw", "wh.mw.svc"}, IPs: 1, Verifies: true}},
		"serving capped at CA expiry":   {sum(capped.Cert, shortCA.CertPEM), summary{Lifetime: time.Hour, DNS: names.DNS, IPs: 1, Verifies: true}},
		"other CA does not verify leaf": {sum(leaf.Cert, shortCA.CertPEM), summary{Lifetime: 365 * 24 * time.Hour, DNS: names.DNS, IPs: 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if !names.Covers(leaf.Cert) || ServiceNames("other", "mw", nil).Covers(leaf.Cert) {
		t.Errorf("Covers: want true for own names, false for others")
	}
	if _, err := ca.IssueServing("x", Names{}, time.Hour, now); err == nil {
		t.Errorf("IssueServing without names: want error")
	}
}

func TestParseKeyPair(t *testing.T) {
	a, _ := NewCA("a", time.Hour, now)
	b, _ := NewCA("b", time.Hour, now)
	tests := map[string]struct {
		cert, key []byte
		wantErr   bool
	}{
		"matching":      {cert: a.CertPEM, key: a.KeyPEM},
		"mismatched":    {cert: a.CertPEM, key: b.KeyPEM, wantErr: true},
		"empty cert":    {key: a.KeyPEM, wantErr: true},
		"empty key":     {cert: a.CertPEM, wantErr: true},
		"garbage":       {cert: []byte("garbage"), key: []byte("garbage"), wantErr: true},
		"cert then key": {cert: append(append([]byte{}, a.CertPEM...), b.CertPEM...), key: a.KeyPEM},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kp, err := ParseKeyPair(tc.cert, tc.key)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && kp.Cert.Subject.CommonName != "a" {
				t.Errorf("leaf CN = %q, want a", kp.Cert.Subject.CommonName)
			}
		})
	}
}

func TestRenewal(t *testing.T) {
	ca, _ := NewCA("a", 300*time.Second, now) // NotBefore is now-30s: lifetime 330s
	tests := map[string]struct {
		at       time.Duration
		fraction float64
		want     bool
	}{
		"fresh":                     {at: 0, fraction: 1.0 / 3, want: false},
		"just before a third left":  {at: 189 * time.Second, fraction: 1.0 / 3, want: false},
		"a third left":              {at: 190 * time.Second, fraction: 1.0 / 3, want: true},
		"expired":                   {at: 301 * time.Second, fraction: 1.0 / 3, want: true},
		"not yet valid (clock off)": {at: -time.Hour, fraction: 1.0 / 3, want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := NeedsRenewal(ca.Cert, tc.fraction, now.Add(tc.at)); got != tc.want {
				t.Errorf("NeedsRenewal at +%s = %v, want %v (renew at %s)", tc.at, got, tc.want, RenewAt(ca.Cert, tc.fraction))
			}
		})
	}
}

func TestMergeBundle(t *testing.T) {
	oldCA, _ := NewCA("old", time.Hour, now.Add(-50*time.Minute))
	newCA, _ := NewCA("new", time.Hour, now)
	gone, _ := NewCA("gone", time.Minute, now.Add(-time.Hour))
	cn := func(cs []*x509.Certificate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Subject.CommonName)
		}
		return out
	}
	tests := map[string]struct {
		lists [][]*x509.Certificate
		want  []string
	}{
		"new first, old kept":      {lists: [][]*x509.Certificate{{newCA.Cert}, {oldCA.Cert}}, want: []string{"new", "old"}},
		"duplicates dropped":       {lists: [][]*x509.Certificate{{newCA.Cert, oldCA.Cert}, {oldCA.Cert, newCA.Cert}}, want: []string{"new", "old"}},
		"expired dropped":          {lists: [][]*x509.Certificate{{newCA.Cert}, {gone.Cert, oldCA.Cert}}, want: []string{"new", "old"}},
		"nil skipped, empty stays": {lists: [][]*x509.Certificate{{nil}}, want: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, cn(MergeBundle(now, tc.lists...))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	round, err := ParseCerts(EncodeCerts(newCA.Cert, oldCA.Cert))
	if err != nil || len(round) != 2 {
		t.Fatalf("EncodeCerts/ParseCerts round trip: %d certs, %v", len(round), err)
	}
	if _, err := ParseCerts([]byte("not pem")); err == nil {
		t.Errorf("ParseCerts(garbage): want error")
	}
}
