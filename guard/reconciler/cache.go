package reconciler

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshwarden/meshwarden/inject"
)

// CacheByObject strips what the guard never reads from the objects the cache keeps for it, so that
// 10k Services and 20k Pods fit in little memory. Pods keep their labels, owners, node, hostNetwork,
// phase, container names, and what the injector's decision reads (the annotations it names, OS, node
// selector and required node affinity) for the sidecar check; Services their
// selector, type and ports.
// Pass it as ctrl.Options.Cache.ByObject, with cache.TransformStripManagedFields as DefaultTransform.
// Other readers of the same cache see the stripped objects: read full Pods with the API reader.
func CacheByObject() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Pod{}:     {Transform: stripPod},
		&corev1.Service{}: {Transform: stripService},
	}
}

func stripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown tombstone
	}
	p.ManagedFields = nil
	// Kept: what the injector's decision reads (the sidecar check asks it), nothing else.
	var kept map[string]string
	for _, k := range decisionAnnotations {
		if v, ok := p.Annotations[k]; ok {
			if kept == nil {
				kept = map[string]string{}
			}
			kept[k] = v
		}
	}
	p.Annotations = kept
	var affinity *corev1.Affinity
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution}}
	}
	p.Spec = corev1.PodSpec{
		NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork,
		Containers: names(p.Spec.Containers), InitContainers: names(p.Spec.InitContainers),
		OS: p.Spec.OS, NodeSelector: p.Spec.NodeSelector, Affinity: affinity,
	}
	p.Status = corev1.PodStatus{Phase: p.Status.Phase}
	return p, nil
}

var decisionAnnotations = inject.DecisionAnnotations()

func names(cs []corev1.Container) []corev1.Container {
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name}
	}
	return out
}

func stripService(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	s.ManagedFields = nil
	s.Spec = corev1.ServiceSpec{Selector: s.Spec.Selector, Ports: s.Spec.Ports, Type: s.Spec.Type, ExternalName: s.Spec.ExternalName}
	s.Status = corev1.ServiceStatus{}
	return s, nil
}
