package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Controller-made pods carry only generateName at admission time; injection must still work.
func TestWorkloadPodsAreInjected(t *testing.T) {
	ctx, ns := setup(t, enabled)
	c := env.Client()
	tests := map[string]struct {
		create func() error
		pods   int
	}{
		"pod": {pods: 1, create: func() error {
			_, err := c.CoreV1().Pods(ns).Create(ctx, newPod("pod").Pod, metav1.CreateOptions{})
			return err
		}},
		"deployment": {pods: 2, create: func() error {
			_, err := c.AppsV1().Deployments(ns).Create(ctx, deployment("deployment"), metav1.CreateOptions{})
			return err
		}},
		"statefulset": {pods: 1, create: func() error {
			_, err := c.AppsV1().StatefulSets(ns).Create(ctx, statefulSet("statefulset"), metav1.CreateOptions{})
			return err
		}},
		"job": {pods: 1, create: func() error {
			_, err := c.BatchV1().Jobs(ns).Create(ctx, job("job"), metav1.CreateOptions{})
			return err
		}},
	}
	for name, tc := range tests {
		if err := tc.create(); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	for name, tc := range tests {
		for _, p := range waitPods(ctx, t, ns, name, tc.pods) {
			if !injected(&p) {
				t.Errorf("%s: pod %s has containers %v, want %s and %s among them", name, p.Name, containerNames(&p), proxyName, initName)
			}
		}
	}
	// kwok plays kubelet: the injected Deployment pods get scheduled and run on the fake node.
	waitRunning(ctx, t, ns, "deployment", 2)
}

func waitRunning(ctx context.Context, t *testing.T, ns, name string, n int) {
	t.Helper()
	for ctx.Err() == nil {
		running := 0
		for _, p := range waitPods(ctx, t, ns, name, n) {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
				running++
			}
		}
		if running >= n {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("%s/%s: fewer than %d pods Running; events:\n%s", ns, name, n, events(ns))
}

func TestPodsOutsideOptedInScopeAreUntouched(t *testing.T) {
	ctx, labelled := setup(t, enabled)
	plain := labelled + "-plain"
	if err := env.CreateNamespace(ctx, plain, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client().CoreV1().Namespaces().Delete(context.Background(), plain, metav1.DeleteOptions{})
	})

	tests := map[string]struct {
		ns  string
		pod podBuilder
	}{
		"unlabelled namespace": {ns: plain, pod: newPod("plain")},
		// kube-system is labelled below: it must stay excluded by name even then.
		"kube-system": {ns: "kube-system", pod: newPod("e2e-untouched")},
		"pod opt-out": {ns: labelled, pod: newPod("optout").withLabel(podInjectLabel, "false")},
	}
	if _, _, err := env.Kubectl(ctx, "label", "namespace", "kube-system", injectLabel+"=enabled"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _, _ = env.Kubectl(context.Background(), "label", "namespace", "kube-system", injectLabel+"-")
	})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := env.Client().CoreV1().Pods(tc.ns).Create(ctx, tc.pod.Pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.ns == "kube-system" {
				t.Cleanup(func() {
					_ = env.Client().CoreV1().Pods(tc.ns).Delete(context.Background(), got.Name, metav1.DeleteOptions{})
				})
			}
			if names := containerNames(got); len(names) != 1 || names[0] != "app" {
				t.Errorf("containers = %v, want only [app]", names)
			}
			if _, ok := got.Annotations["sidecar.meshwarden.io/status"]; ok {
				t.Errorf("status annotation set on an untouched pod")
			}
		})
	}
}
