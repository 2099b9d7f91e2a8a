package e2e

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The API server comes back on the same address with the same data, and injection resumes: the
// base for fault tests that restart it under load.
func TestAPIServerRestart(t *testing.T) {
	ctx, ns := setup(t, enabled)
	start := time.Now()
	if err := env.RestartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restarted in %s", time.Since(start).Round(100*time.Millisecond))
	// meshwarden exits when it loses its leader lease during a long outage; in a cluster the
	// kubelet restarts it, here the test does.
	if err := waitInjecting(ctx); err != nil {
		if mesh.Running() {
			t.Fatal(err)
		}
		t.Logf("meshwarden exited during the outage (see %s); restarting it as the kubelet would", mesh.LogFile())
		if err := mesh.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := waitInjecting(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := env.Client().CoreV1().Pods(ns).Create(ctx, newPod("after-restart").Pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !injected(got) {
		t.Errorf("pod after restart has containers %v, want it injected", containerNames(got))
	}
}
