package reconciler

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/meshwarden/meshwarden/inject"
)

// Names shared with the injector (docs/architecture.md).
const (
	NamespaceInjectLabel = "meshwarden.io/inject"
	PodInjectLabel       = "sidecar.meshwarden.io/inject"
	StatusAnnotation     = "sidecar.meshwarden.io/status"
)

// SidecarReconciler reports pods that should carry the sidecar and do not: typically created while the
// webhook was down under failurePolicy: Ignore. Each gets one Event on its owner and counts in a gauge.
type SidecarReconciler struct {
	Client   client.Reader
	Recorder Recorder
	// Decide is the injector's own decision (inject.Injector.Decide), so that a pod the webhook skips
	// (system namespace, opted out, another mesh's, Windows, …) is never reported as missing its sidecar.
	Decide func(pod *corev1.Pod, ns *corev1.Namespace) bool
	// ProxyName is the proxy container of the profile in force (istio-proxy or envoy).
	ProxyName string
	Metrics   *Metrics
	Log       logr.Logger

	mu      sync.Mutex
	missing map[types.NamespacedName]bool
}

// SetupWithManager adds the controller; it runs on the leader only. A namespace whose injection label
// changes re-queues its pods.
func (r *SidecarReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("meshwarden-sidecar-check").
		For(&corev1.Pod{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.podsOf), builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}

func (r *SidecarReconciler) podsOf(ctx context.Context, ns client.Object) []reconcile.Request {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ns.GetName()), client.UnsafeDisableDeepCopy); err != nil {
		r.Log.Error(err, "listing pods of a relabelled namespace", "namespace", ns.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, len(pods.Items))
	for i, p := range pods.Items {
		reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: p.Name}}
	}
	return reqs
}

// Reconcile looks at one pod.
func (r *SidecarReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pod corev1.Pod
	if err := r.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			r.set(req.NamespacedName, false)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, client.ObjectKey{Name: pod.Namespace}, &ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	missing := r.expectsSidecar(&ns, &pod) && !r.hasSidecar(&pod)
	if r.set(req.NamespacedName, missing) && missing {
		owner, kind := ownerOf(&pod)
		r.Recorder.Eventf(owner, nil, corev1.EventTypeWarning, ReasonSidecarMissing, "Check",
			"pod %s runs without the %s sidecar although namespace %s has %s=enabled; delete the pod to have it injected",
			pod.Name, r.ProxyName, pod.Namespace, NamespaceInjectLabel)
		r.Log.Info("pod without sidecar", "namespace", pod.Namespace, "pod", pod.Name, "owner", kind)
	}
	return reconcile.Result{}, nil
}

// set records the pod's state and reports whether it changed.
func (r *SidecarReconciler) set(k types.NamespacedName, missing bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.missing == nil {
		r.missing = map[types.NamespacedName]bool{}
	}
	was := r.missing[k]
	if missing {
		r.missing[k] = true
	} else {
		delete(r.missing, k)
	}
	r.Metrics.PodsWithoutSidecar.Set(float64(len(r.missing)))
	return was != missing
}

// expectsSidecar: a live pod of an enabled namespace that the injector would inject. (A pod opted in
// elsewhere never reached the webhook, whose selector only matches enabled namespaces.)
func (r *SidecarReconciler) expectsSidecar(ns *corev1.Namespace, pod *corev1.Pod) bool {
	if ns.Labels[NamespaceInjectLabel] != "enabled" {
		return false
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil {
		return false
	}
	return r.Decide(pod, ns)
}

func (r *SidecarReconciler) hasSidecar(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[StatusAnnotation]; ok {
		return true
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == r.ProxyName {
				return true
			}
		}
	}
	return false
}

// ownerOf is the pod's controlling owner as a reference the recorder can use without reading it, or
// the pod itself when it has none.
func ownerOf(pod *corev1.Pod) (*metav1.PartialObjectMetadata, string) {
	if ref := metav1.GetControllerOf(pod); ref != nil {
		return &metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{APIVersion: ref.APIVersion, Kind: ref.Kind},
			ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: ref.Name, UID: ref.UID},
		}, ref.Kind
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}, "Pod"
}

// InjectorDecision is SidecarReconciler.Decide for an injector: the pod (from the stripped cache,
// which keeps what the decision reads) as JSON, through the injector's own Decide.
func InjectorDecision(in *inject.Injector) func(*corev1.Pod, *corev1.Namespace) bool {
	return func(pod *corev1.Pod, ns *corev1.Namespace) bool {
		raw, err := json.Marshal(pod)
		if err != nil {
			return false // a typed Pod always encodes
		}
		ok, _, err := in.Decide(raw, inject.Namespace{Name: ns.Name, Labels: ns.Labels})
		return err == nil && ok
	}
}
