package certs

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/meshwarden/meshwarden/certs/pki"
)

// TestSelfLeaderFailover runs two replicas on one Lease, kills the leader without releasing the
// lease (a crash), clobbers caBundle, and expects the other to take over within the lease duration
// and restore it with the same CA.
func TestSelfLeaderFailover(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "failover")
	f.registerWebhooks(nil)
	cfg := f.config(nil)
	a, b := f.startReplica(cfg, "a", true), f.startReplica(cfg, "b", true)
	for _, r := range []*replica{a, b} {
		eventually(t, 60*time.Second, "both replicas ready", func() error { return r.p.Ready(nil) })
	}
	before, err := f.secret(ctx, secretName)
	if err != nil {
		t.Fatal(err)
	}
	leader, follower := a, b
	if b.leads() {
		leader, follower = b, a
	}
	if !leader.leads() || follower.leads() {
		t.Fatalf("want exactly one leader: a=%v b=%v", a.leads(), b.leads())
	}
	// The follower serves the leader's certificate, read from the Secret.
	lc, _ := leader.p.GetCertificate(nil)
	fc, _ := follower.p.GetCertificate(nil)
	if !bytes.Equal(lc.Certificate[0], fc.Certificate[0]) {
		t.Fatalf("replicas serve different certificates")
	}

	killed := time.Now()
	f.stop(leader)
	f.clobber(ctx, []byte("garbage"))
	leases := f.client.CoordinationV1().Leases(f.name)
	old, err := leases.Get(ctx, "certs-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const leaseDuration, retryPeriod = 4 * time.Second, 500 * time.Millisecond
	eventually(t, 3*leaseDuration, "follower takes the lease", func() error {
		if !follower.leads() {
			return fmt.Errorf("not leading")
		}
		return nil
	})
	eventually(t, 10*time.Second, "caBundle restored by the new leader", func() error { return f.bundleMatchesSecret(ctx) })
	t.Logf("caBundle right again %s after the kill", time.Since(killed))
	taken, err := leases.Get(ctx, "certs-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Measured on the Lease: from the dead leader's last renewal to the follower's acquisition. client-go
	// counts the duration from when the follower last saw a renewal, and both that observation and the
	// takeover happen on retry ticks jittered by up to 1.2x; the rest is slack for a loaded machine.
	gap := taken.Spec.AcquireTime.Sub(old.Spec.RenewTime.Time)
	t.Logf("lease taken %s after the dead leader's last renewal (lease duration %s)", gap, leaseDuration)
	if *taken.Spec.HolderIdentity == *old.Spec.HolderIdentity {
		t.Fatalf("the lease still names the killed leader")
	}
	if limit := leaseDuration + 2*retryPeriod*22/10 + 2*time.Second; gap < leaseDuration-time.Second || gap > limit {
		t.Errorf("lease taken %s after the last renewal, want between the lease duration %s and %s", gap, leaseDuration, limit)
	}
	after, err := f.secret(ctx, secretName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before[KeySignerCert], after[KeySignerCert]) {
		t.Errorf("the new leader replaced the CA")
	}
	if err := follower.p.Ready(nil); err != nil {
		t.Errorf("new leader not ready: %v", err)
	}
}

// TestSelfConcurrentFirstStarts forces the race the Lease normally prevents: many replicas that all
// believe they lead start at once on a cluster without the Secret. Exactly one CA may ever be
// written, and every replica must end up serving a certificate from it.
func TestSelfConcurrentFirstStarts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := newFixture(t, "race")
	f.registerWebhooks(nil)
	cfg := f.config(nil)

	w, err := f.client.CoreV1().Secrets(f.name).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + secretName})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	written := map[string]bool{}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*corev1.Secret); ok {
				mu.Lock()
				written[string(s.Data[KeySignerCert])] = true
				mu.Unlock()
			}
		}
	}()

	const n = 8
	var providers []*Provider
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		p, err := New(cfg, f.logs.logger(t, fmt.Sprintf("r%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := p.Runnables(f.rc)
		if err != nil {
			t.Fatal(err)
		}
		providers = append(providers, p)
		for _, r := range rs {
			wg.Add(1)
			go func(r manager.Runnable) {
				defer wg.Done()
				<-start // no leader election: every writer runs, as in a split brain
				_ = r.Start(ctx)
			}(r)
		}
	}
	close(start)
	defer func() { cancel(); wg.Wait() }()
	for i, p := range providers {
		eventually(t, 60*time.Second, fmt.Sprintf("replica %d ready", i), func() error { return p.Ready(nil) })
	}
	data, err := f.secret(ctx, secretName)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := ParseState(data)
	for i, p := range providers {
		c, _ := p.GetCertificate(nil)
		if !pki.Trusts(data[KeyBundle], c.Leaf, time.Now()) || c.Leaf.CheckSignatureFrom(st.Signer.Cert) != nil {
			t.Errorf("replica %d serves a certificate not from the stored CA", i)
		}
	}
	w.Stop()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	if len(written) != 1 {
		var cns []string
		for raw := range written {
			if c, err := pki.ParseCerts([]byte(raw)); err == nil {
				cns = append(cns, c[0].Subject.CommonName+" "+c[0].SerialNumber.Text(16))
			}
		}
		t.Errorf("%d different CAs were written, want exactly 1: %v", len(written), cns)
	}
	if !f.logs.contains("created CA") {
		t.Errorf("no replica logged creating the CA")
	}
}
