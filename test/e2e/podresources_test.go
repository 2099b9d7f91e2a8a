package e2e

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPodLevelResourcesStayValid: a pod with pod-level resources smaller than what the proxy adds is
// created (the API server validates the injected pod: its pod-level requests must cover the
// containers'), injected, and its pod-level requests grew by the proxy's.
func TestPodLevelResourcesStayValid(t *testing.T) {
	ctx, ns := setup(t, enabled)
	p := newPod("pod-level").Pod
	p.Spec.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	got, err := env.Client().CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create a pod with pod-level resources in an injected namespace: %v", err)
	}
	if !injected(got) {
		t.Fatalf("not injected: %v", got.Annotations)
	}
	mem := got.Spec.Resources.Requests[corev1.ResourceMemory]
	if mem.Cmp(resource.MustParse("64Mi")) <= 0 {
		t.Errorf("pod-level memory request %s, want the user's 64Mi plus the proxy's", mem.String())
	}
}
