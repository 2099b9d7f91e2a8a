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
	// meshwarden must ride out the outage by itself: losing the leader lease restarts it in place
	// (same process), never exits it, so nothing has to restart it as a kubelet would.
	if err := waitInjecting(ctx); err != nil {
		t.Fatalf("injection did not resume (see %s): %v", mesh.LogFile(), err)
	}
	if !mesh.Running() {
		t.Fatalf("meshwarden exited during the API server outage; see %s", mesh.LogFile())
	}
	got, err := env.Client().CoreV1().Pods(ns).Create(ctx, newPod("after-restart").Pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !injected(got) {
		t.Errorf("pod after restart has containers %v, want it injected", containerNames(got))
	}
}
