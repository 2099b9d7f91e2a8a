package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshwarden/meshwarden/certs/pki"
	"github.com/meshwarden/meshwarden/config"
)

const secretName = "meshwarden-webhook-tls"

// bundleMatchesSecret checks that both configurations carry the Secret's bundle and that the API
// server can call the webhook.
func (f *fixtureEnv) bundleMatchesSecret(ctx context.Context) error {
	data, err := f.secret(ctx, secretName)
	if err != nil || data == nil {
		return fmt.Errorf("no Secret yet (%v)", err)
	}
	bs, err := f.caBundles(ctx)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if !bytes.Equal(b, data[KeyBundle]) {
			return errors.New("caBundle differs from the Secret's ca.crt")
		}
	}
	return f.createConfigMap(ctx)
}

func TestSelfFirstStartThenClobberedCABundle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "first-start")
	f.registerWebhooks(nil) // as a chart creates them: no caBundle yet
	r := f.startReplica(f.config(nil), "a", true)

	took := eventually(t, 60*time.Second, "ready after first start", func() error { return r.p.Ready(nil) })
	t.Logf("ready %s after start", took)
	data, err := f.secret(ctx, secretName)
	if err != nil || data == nil {
		t.Fatalf("Secret not created: %v", err)
	}
	st, problems := ParseState(data)
	if len(problems) > 0 {
		t.Fatalf("Secret written with problems: %q", problems)
	}
	if want := pki.ServiceNames("meshwarden-webhook", f.name, []string{"127.0.0.1"}); !want.Covers(st.Serving.Cert) {
		t.Errorf("serving certificate names %v %v do not cover %v", st.Serving.Cert.DNSNames, st.Serving.Cert.IPAddresses, want)
	}
	// Right after readiness the API server can call the webhook (failurePolicy Fail).
	if err := f.createConfigMap(ctx); err != nil {
		t.Fatalf("creating a ConfigMap through the webhook right after readiness: %v", err)
	}
	if f.calls.Load() == 0 {
		t.Fatalf("the API server never called the webhook")
	}
	if err := f.bundleMatchesSecret(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.logs.contains("created CA") {
		t.Errorf("no log line says the CA was created")
	}

	for _, garbage := range [][]byte{[]byte("garbage"), nil, data[KeyBundle][:len(data[KeyBundle])/2]} {
		f.clobber(ctx, garbage)
		took := eventually(t, 10*time.Second, "caBundle restored and webhook callable", func() error { return f.bundleMatchesSecret(ctx) })
		t.Logf("caBundle %.10q… restored in %s", garbage, took)
	}
}

func TestSelfRepairsPrecreatedSecret(t *testing.T) {
	tests := map[string]struct {
		secret  *corev1.Secret
		wantLog string
	}{
		"empty Opaque": {
			secret:  &corev1.Secret{Type: corev1.SecretTypeOpaque},
			wantLog: "repairing: Secret exists but is empty",
		},
		"malformed TLS": {
			secret: &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{
				"tls.crt": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "tls.key": []byte("nope"), "keep-me": []byte("x"),
			}},
			wantLog: "repairing: ca-signer.crt/ca-signer.key unusable: certificate is empty; tls.crt/tls.key unusable",
		},
	}
	i := 0
	for name, tc := range tests {
		i++
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, fmt.Sprintf("repair-%d", i))
			tc.secret.Name, tc.secret.Namespace = secretName, f.name
			if _, err := f.client.CoreV1().Secrets(f.name).Create(ctx, tc.secret, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.registerWebhooks([]byte("stale"))
			r := f.startReplica(f.config(nil), "a", false)
			eventually(t, 60*time.Second, "ready", func() error { return r.p.Ready(nil) })
			got, err := f.client.CoreV1().Secrets(f.name).Get(ctx, secretName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, problems := ParseState(got.Data); len(problems) > 0 || got.Type != tc.secret.Type {
				t.Errorf("after repair: type %s (want %s), problems %q", got.Type, tc.secret.Type, problems)
			}
			for k, v := range tc.secret.Data {
				if k == "keep-me" && !bytes.Equal(got.Data[k], v) {
					t.Errorf("a key meshwarden does not own was dropped")
				}
			}
			if !f.logs.contains(tc.wantLog) {
				t.Errorf("no log line says %q", tc.wantLog)
			}
			if err := f.bundleMatchesSecret(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSelfRotationUnderLoad shortens every lifetime so the serving certificate rotates every few
// seconds and the CA once, while ConfigMaps are created through the webhook without pause.
func TestSelfRotationUnderLoad(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "rotation")
	f.registerWebhooks(nil)
	cfg := f.config(func(c *config.Certs) {
		c.CAValidity = metav1.Duration{Duration: 24 * time.Second}
		c.CertValidity = metav1.Duration{Duration: 8 * time.Second}
		c.RenewFraction = 0.5
	})
	r := f.startReplica(cfg, "a", false)
	eventually(t, 60*time.Second, "ready", func() error { return r.p.Ready(nil) })

	// Record every CA and serving certificate the Secret ever holds.
	w, err := f.client.CoreV1().Secrets(f.name).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + secretName})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	signers, servings := map[string]bool{}, map[string]bool{}
	go func() {
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*corev1.Secret); ok {
				st, _ := ParseState(s.Data)
				if st.Signer != nil && st.Serving != nil {
					f.mu.Lock()
					signers[string(st.Signer.Cert.Raw)], servings[string(st.Serving.Cert.Raw)] = true, true
					f.mu.Unlock()
				}
			}
		}
	}()

	// Meanwhile a plain TLS client records which certificate each new connection is served.
	served := map[string]bool{}
	var okCount, failures int
	var errs []error
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		if err := f.createConfigMap(ctx); err != nil {
			failures++
			errs = append(errs, err)
		} else {
			okCount++
		}
		if conn, err := tls.Dial("tcp", f.url[len("https://"):], &tls.Config{InsecureSkipVerify: true}); err == nil { //nolint:gosec // only reads which certificate is served
			served[string(conn.ConnectionState().PeerCertificates[0].Raw)] = true
			_ = conn.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.mu.Lock()
	nSigners, nServings := len(signers), len(servings)
	f.mu.Unlock()
	t.Logf("%d ConfigMaps created, %d failed; Secret held %d CAs, %d serving certs; %d served", okCount, failures, nSigners, nServings, len(served))
	if failures > 0 {
		t.Errorf("%d creations failed during rotation, first: %v", failures, errs[0])
	}
	if nSigners < 2 || nServings < 4 || len(served) < 4 {
		t.Errorf("expected at least one CA rotation and several serving rotations, got %d CAs, %d serving certs, %d served", nSigners, nServings, len(served))
	}
	if !f.logs.contains("CA rotation: new CA") {
		t.Errorf("no log line about the CA rotation")
	}
}

// TestMetrics: after the integration tests above, the counters moved (they are process-wide).
func TestMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("reads counters the integration tests move")
	}
	f := newFixture(t, "metrics")
	f.registerWebhooks([]byte("stale"))
	r := f.startReplica(f.config(nil), "a", false)
	eventually(t, 60*time.Second, "ready", func() error { return r.p.Ready(nil) })
	c, _ := r.p.GetCertificate(nil)
	tests := map[string]struct {
		got  float64
		want func(float64) bool
	}{
		"secret writes":    {value(secretWrites), func(v float64) bool { return v >= 1 }},
		"serving reloads":  {value(servingReloads), func(v float64) bool { return v >= 1 }},
		"caBundle restore": {value(caBundleRestores.WithLabelValues("MutatingWebhookConfiguration")), func(v float64) bool { return v >= 1 }},
		"expiry":           {value(servingExpiry), func(v float64) bool { return v == float64(c.Leaf.NotAfter.Unix()) }},
	}
	for name, tc := range tests {
		if !tc.want(tc.got) {
			t.Errorf("%s = %v", name, tc.got)
		}
	}
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestSelfSecretDeletedWhileServing: someone deletes the Secret while replicas serve from it. The
// new CA must be rolled in like a rotation, so the webhook never stops being callable.
func TestSelfSecretDeletedWhileServing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "deleted")
	f.registerWebhooks(nil)
	r := f.startReplica(f.config(nil), "a", false)
	eventually(t, 60*time.Second, "ready", func() error { return r.p.Ready(nil) })
	before, err := f.secret(ctx, secretName)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.CoreV1().Secrets(f.name).Delete(ctx, secretName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var failures []error
	replaced := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !replaced; {
		if err := f.createConfigMap(ctx); err != nil {
			failures = append(failures, err)
		}
		data, err := f.secret(ctx, secretName)
		if err == nil && data != nil && len(data["tls.crt"]) > 0 && !bytes.Equal(data[KeySignerCert], before[KeySignerCert]) {
			replaced = f.bundleMatchesSecret(ctx) == nil && r.p.Ready(nil) == nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !replaced {
		t.Fatalf("no new CA and serving certificate within 30s")
	}
	if len(failures) > 0 {
		t.Errorf("%d creations failed while the CA was replaced, first: %v", len(failures), failures[0])
	}
	if !f.logs.contains("no usable CA in the Secret") {
		t.Errorf("no log line says how the lost CA was replaced")
	}
	if err := f.createConfigMap(ctx); err != nil {
		t.Fatal(err)
	}
}
