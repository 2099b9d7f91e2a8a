package certs

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// writer is self mode's leader-only loop: it keeps the Secret valid (create, repair, rotate) and the
// caBundle right. It is the only code that writes either.
//
// No replica ever mints a CA of its own: the CA only exists once it is stored. Writes are
// create-if-absent and update-at-resourceVersion, so even two writers at once (a split brain during
// a lease hand-over) cannot both succeed; the loser re-reads and adopts what the winner stored.
type writer struct {
	client     kubernetes.Interface
	namespace  string
	secretName string
	policy     Policy
	view       *view
	served     *served
	log        logr.Logger
	now        func() time.Time

	// settle is how long the caBundle must have carried a pending CA before it signs: the API
	// servers' own watches of the webhook configurations lag this replica's by a little.
	settle time.Duration
	// seenBundle and seenSince track since when the caBundle carried the current bundle.
	seenBundle []byte
	seenSince  time.Time
}

// resync bounds how long the loop sleeps with nothing to do.
const resync = time.Minute

// NeedLeaderElection is true: only the leader writes.
func (w *writer) NeedLeaderElection() bool { return true }

// Start reconciles until ctx ends.
func (w *writer) Start(ctx context.Context) error {
	select {
	case <-w.view.synced:
	case <-ctx.Done():
		return nil
	}
	w.log.Info("certificate writer started (this replica leads)", "secret", w.namespace+"/"+w.secretName)
	backoff := time.Second
	for {
		wait, err := w.reconcile(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
			// Someone wrote in between; the next pass re-reads and adopts what they wrote.
			wait = 0
		case err != nil:
			w.log.Error(err, "reconciling webhook certificates; retrying", "in", backoff)
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		default:
			backoff = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-w.view.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// reconcile makes one pass and says how long until the next is due.
func (w *writer) reconcile(ctx context.Context) (time.Duration, error) {
	now := w.now()
	// A fresh read, not the cache: the decision to write must be made on the latest resourceVersion.
	sec, err := w.client.CoreV1().Secrets(w.namespace).Get(ctx, w.secretName, metav1.GetOptions{})
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("reading Secret %s/%s: %w", w.namespace, w.secretName, err)
	}
	var data map[string][]byte
	if exists {
		data = sec.Data
	}
	cur, problems := ParseState(data)
	if exists && len(data) == 0 {
		problems = []string{"Secret exists but is empty"}
	}
	injected, err := w.injected(cur.BundlePEM(), now)
	if err != nil {
		return 0, err
	}
	obs := Observed{Now: now, BundleInjected: injected}
	if w.view.keeper != nil {
		if obs.ClusterCAs, err = w.view.keeper.trustedCAs(now); err != nil {
			return 0, err
		}
	}
	next, actions, err := Plan(cur, problems, w.policy, obs)
	if err != nil {
		return 0, err
	}
	if len(actions) > 0 {
		if err := w.write(ctx, sec, next); err != nil {
			return 0, err
		}
		secretWrites.Inc()
		w.log.Info("updated webhook certificate Secret", "secret", w.namespace+"/"+w.secretName, "actions", strings.Join(actions, "; "))
	}
	// Serve what was just written at once rather than waiting for the watch to echo it back.
	if next.Serving != nil {
		if c, err := next.Serving.TLSCertificate(); err == nil {
			w.served.set(c)
		}
	}
	if w.view.keeper != nil {
		if err := w.view.keeper.sync(ctx, next.BundlePEM()); err != nil {
			return 0, err
		}
	}
	wait := resync
	if at := NextCheck(next, w.policy); !at.IsZero() {
		wait = min(wait, max(at.Sub(now), 100*time.Millisecond))
	}
	if next.Next != nil {
		// A rotation is in flight: come back soon to promote the new CA.
		wait = min(wait, time.Second)
	}
	return wait, nil
}

// injected reports whether every webhook configuration has carried bundle for at least w.settle.
func (w *writer) injected(bundle []byte, now time.Time) (bool, error) {
	if w.view.keeper == nil {
		return true, nil
	}
	ok, err := w.view.keeper.injected(bundle)
	if err != nil || !ok {
		w.seenBundle = nil
		return false, err
	}
	if !bytes.Equal(w.seenBundle, bundle) {
		w.seenBundle, w.seenSince = bytes.Clone(bundle), now
	}
	return now.Sub(w.seenSince) >= w.settle, nil
}

func (w *writer) write(ctx context.Context, old *corev1.Secret, next State) error {
	secrets := w.client.CoreV1().Secrets(w.namespace)
	if old == nil || old.Name == "" {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: w.secretName, Namespace: w.namespace, Labels: map[string]string{
				"app.kubernetes.io/part-of": "meshwarden", "app.kubernetes.io/managed-by": "meshwarden",
			}},
			Type: corev1.SecretTypeTLS,
			Data: next.Data(),
		}
		_, err := secrets.Create(ctx, s, metav1.CreateOptions{FieldManager: fieldManager})
		return err
	}
	s := old.DeepCopy()
	// Keep keys others may have added; replace ours. The type stays whatever was pre-created.
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for _, k := range []string{KeyBundle, KeySignerCert, KeySignerKey, KeyNextCert, KeyNextKey} {
		delete(s.Data, k) // what next does not hold must not linger (e.g. a garbage signer)
	}
	for k, v := range next.Data() {
		s.Data[k] = v
	}
	_, err := secrets.Update(ctx, s, updateOpts)
	return err
}

// loadSecret is every replica's reaction to the Secret changing: serve its certificate if usable.
func loadSecret(s *served, log logr.Logger) func(*corev1.Secret) {
	return func(sec *corev1.Secret) {
		st, _ := ParseState(sec.Data)
		if st.Serving == nil {
			return
		}
		c, err := st.Serving.TLSCertificate()
		if err != nil {
			return
		}
		if s.set(c) {
			log.Info("serving certificate loaded from Secret", "secret", sec.Namespace+"/"+sec.Name,
				"notAfter", c.Leaf.NotAfter.Format(time.RFC3339), "serial", c.Leaf.SerialNumber.Text(16))
		}
	}
}
