package certs

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// view is every replica's watch on what the certificates depend on: the one Secret (self mode) and
// meshwarden's webhook configurations (when caBundle is kept). Watching instead of polling is what
// lets a clobbered caBundle be put back within seconds. It runs on every replica, leader or not:
// each one loads the serving certificate from the Secret and judges its own readiness.
type view struct {
	factories []informers.SharedInformerFactory
	secrets   corelisters.SecretLister // nil unless self mode
	keeper    *keeper                  // nil unless caBundle is kept
	synced    chan struct{}
	// wake nudges the leader's loop; buffered 1, so bursts of events collapse into one reconcile.
	wake chan struct{}
}

// watchResync re-delivers everything now and then, a backstop for a missed event.
const watchResync = 5 * time.Minute

func newView(client kubernetes.Interface, namespace, secretName string, selector labels.Selector, withSecret, withWebhooks bool, onSecret func(*corev1.Secret)) *view {
	v := &view{synced: make(chan struct{}), wake: make(chan struct{}, 1)}
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { v.poke() },
		UpdateFunc: func(any, any) { v.poke() },
		DeleteFunc: func(any) { v.poke() },
	}
	if withSecret {
		// Only the one Secret: RBAC can then be limited to that name, and other Secrets never reach memory.
		f := informers.NewSharedInformerFactoryWithOptions(client, watchResync, informers.WithNamespace(namespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", secretName).String()
			}))
		inf := f.Core().V1().Secrets()
		load := func(obj any) {
			if s, ok := obj.(*corev1.Secret); ok {
				onSecret(s)
			}
			v.poke()
		}
		_, _ = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: load, UpdateFunc: func(_, n any) { load(n) }, DeleteFunc: func(any) { v.poke() },
		})
		v.secrets = inf.Lister()
		v.factories = append(v.factories, f)
	}
	if withWebhooks {
		f := informers.NewSharedInformerFactoryWithOptions(client, watchResync,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector.String() }))
		m, vw := f.Admissionregistration().V1().MutatingWebhookConfigurations(), f.Admissionregistration().V1().ValidatingWebhookConfigurations()
		_, _ = m.Informer().AddEventHandler(poke)
		_, _ = vw.Informer().AddEventHandler(poke)
		v.keeper = &keeper{client: client, mutating: m.Lister(), validating: vw.Lister(), selector: selector}
		v.factories = append(v.factories, f)
	}
	return v
}

func (v *view) poke() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Start runs the informers until ctx ends.
func (v *view) Start(ctx context.Context) error {
	for _, f := range v.factories {
		f.Start(ctx.Done())
	}
	for _, f := range v.factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watching %v did not sync: check meshwarden's RBAC for get/list/watch on it", typ)
			}
		}
	}
	close(v.synced)
	<-ctx.Done()
	for _, f := range v.factories {
		f.Shutdown()
	}
	return nil
}

// NeedLeaderElection is false: every replica watches.
func (v *view) NeedLeaderElection() bool { return false }

func (v *view) isSynced() bool {
	select {
	case <-v.synced:
		return true
	default:
		return false
	}
}
