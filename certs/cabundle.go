package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	admissionlisters "k8s.io/client-go/listers/admissionregistration/v1"

	"github.com/meshwarden/meshwarden/certs/pki"
)

// keeper keeps caBundle right in meshwarden's webhook configurations. It reads them from the
// informer caches of the cluster view and writes with the cached resourceVersion, so a configuration
// that changed meanwhile is a conflict that the next reconcile (triggered by that very change) retries.
type keeper struct {
	client     kubernetes.Interface
	mutating   admissionlisters.MutatingWebhookConfigurationLister
	validating admissionlisters.ValidatingWebhookConfigurationLister
	selector   labels.Selector
	log        logr.Logger
}

// fieldManager names meshwarden's certificate writes in managedFields.
const fieldManager = "meshwarden-certs"

var updateOpts = metav1.UpdateOptions{FieldManager: fieldManager}

// mutatingClientConfigs returns pointers to every webhook's clientConfig of a configuration.
func mutatingClientConfigs(c *admissionv1.MutatingWebhookConfiguration) []*admissionv1.WebhookClientConfig {
	out := make([]*admissionv1.WebhookClientConfig, len(c.Webhooks))
	for i := range c.Webhooks {
		out[i] = &c.Webhooks[i].ClientConfig
	}
	return out
}

func validatingClientConfigs(c *admissionv1.ValidatingWebhookConfiguration) []*admissionv1.WebhookClientConfig {
	out := make([]*admissionv1.WebhookClientConfig, len(c.Webhooks))
	for i := range c.Webhooks {
		out[i] = &c.Webhooks[i].ClientConfig
	}
	return out
}

// setBundle sets bundle everywhere and reports how many webhooks changed.
func setBundle(ccs []*admissionv1.WebhookClientConfig, bundle []byte) int {
	n := 0
	for _, cc := range ccs {
		if !bytes.Equal(cc.CABundle, bundle) {
			cc.CABundle = bytes.Clone(bundle)
			n++
		}
	}
	return n
}

// sync writes bundle into every selected configuration that lacks it.
func (k *keeper) sync(ctx context.Context, bundle []byte) error {
	ms, err := k.mutating.List(k.selector)
	if err != nil {
		return err
	}
	for _, m := range ms {
		m = m.DeepCopy()
		if n := setBundle(mutatingClientConfigs(m), bundle); n > 0 {
			if _, err := k.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, m, updateOpts); err != nil {
				return fmt.Errorf("restoring caBundle of MutatingWebhookConfiguration %s: %w", m.Name, err)
			}
			caBundleRestores.WithLabelValues("MutatingWebhookConfiguration").Inc()
			k.log.Info("restored caBundle", "mutatingWebhookConfiguration", m.Name, "webhooks", n)
		}
	}
	vs, err := k.validating.List(k.selector)
	if err != nil {
		return err
	}
	for _, v := range vs {
		v = v.DeepCopy()
		if n := setBundle(validatingClientConfigs(v), bundle); n > 0 {
			if _, err := k.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, v, updateOpts); err != nil {
				return fmt.Errorf("restoring caBundle of ValidatingWebhookConfiguration %s: %w", v.Name, err)
			}
			caBundleRestores.WithLabelValues("ValidatingWebhookConfiguration").Inc()
			k.log.Info("restored caBundle", "validatingWebhookConfiguration", v.Name, "webhooks", n)
		}
	}
	return nil
}

// injected reports whether every selected webhook carries exactly bundle.
func (k *keeper) injected(bundle []byte) (bool, error) {
	ok := true
	err := k.each(func(kind, name string, ccs []*admissionv1.WebhookClientConfig) error {
		for _, cc := range ccs {
			if !bytes.Equal(cc.CABundle, bundle) {
				ok = false
			}
		}
		return nil
	})
	return ok, err
}

// trusted returns nil when every selected webhook's caBundle trusts leaf at now: what the API server
// needs before it can call this replica.
func (k *keeper) trusted(leaf *x509.Certificate, now time.Time) error {
	return k.each(func(kind, name string, ccs []*admissionv1.WebhookClientConfig) error {
		for _, cc := range ccs {
			if !pki.Trusts(cc.CABundle, leaf, now) {
				return fmt.Errorf("the caBundle of %s %s does not trust the served certificate yet", kind, name)
			}
		}
		return nil
	})
}

func (k *keeper) each(f func(kind, name string, ccs []*admissionv1.WebhookClientConfig) error) error {
	ms, err := k.mutating.List(k.selector)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := f("MutatingWebhookConfiguration", m.Name, mutatingClientConfigs(m)); err != nil {
			return err
		}
	}
	vs, err := k.validating.List(k.selector)
	if err != nil {
		return err
	}
	for _, v := range vs {
		if err := f("ValidatingWebhookConfiguration", v.Name, validatingClientConfigs(v)); err != nil {
			return err
		}
	}
	return nil
}

// trustedCAs are the distinct unexpired CA certificates in the selected webhooks' caBundles.
func (k *keeper) trustedCAs(now time.Time) ([]*x509.Certificate, error) {
	var lists [][]*x509.Certificate
	err := k.each(func(_, _ string, ccs []*admissionv1.WebhookClientConfig) error {
		for _, cc := range ccs {
			certs, err := pki.ParseCerts(cc.CABundle)
			if err != nil {
				continue // garbage in a caBundle trusts nothing
			}
			var cas []*x509.Certificate
			for _, c := range certs {
				if c.IsCA {
					cas = append(cas, c)
				}
			}
			lists = append(lists, cas)
		}
		return nil
	})
	return pki.MergeBundle(now, lists...), err
}
