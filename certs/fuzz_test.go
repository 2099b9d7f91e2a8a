package certs

import (
	"time"

	"testing"

	"github.com/meshwarden/meshwarden/certs/pki"
)

// FuzzParseState: whatever a pre-created or hand-edited Secret holds, parsing never panics and one
// Plan pass turns it into a state without problems whose bundle trusts its serving certificate.
func FuzzParseState(f *testing.F) {
	good := fixture(&testing.T{}, t0, 100*time.Hour, 10*time.Hour).Data()
	none := []byte{}
	f.Add(good[KeySignerCert], good[KeySignerKey], good["tls.crt"], good["tls.key"], good[KeyBundle], none, none)
	f.Add(none, none, none, none, none, none, none)
	f.Add(none, none, none, none, good[KeyBundle], good[KeySignerCert], good[KeySignerKey])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte("x"), good["tls.crt"], good[KeySignerKey], good["tls.crt"], none, none)
	f.Fuzz(func(t *testing.T, signer, signerKey, crt, key, bundle, nextCrt, nextKey []byte) {
		cur, problems := ParseState(map[string][]byte{KeySignerCert: signer, KeySignerKey: signerKey, "tls.crt": crt, "tls.key": key,
			KeyBundle: bundle, KeyNextCert: nextCrt, KeyNextKey: nextKey})
		next, _, err := Plan(cur, problems, testPolicy, Observed{Now: t0, BundleInjected: true})
		if err != nil {
			t.Fatal(err)
		}
		back, problems := ParseState(next.Data())
		if len(problems) > 0 {
			t.Fatalf("after Plan: %q", problems)
		}
		if !pki.Trusts(back.BundlePEM(), back.Serving.Cert, t0) {
			t.Fatalf("after Plan the bundle does not trust the serving certificate")
		}
	})
}
