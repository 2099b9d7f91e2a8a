package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/test/cluster"
)

func podYAML(ns, name, annotations string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {app: %s}
  annotations: {%s}
spec:
  containers:
  - name: app
    image: registry.example/app:1
`, name, ns, name, annotations)
}

func deploymentYAML(ns, name string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
      - name: app
        image: registry.example/app:1
`, name, ns)
}

func TestKubectlApplyShowsDenial(t *testing.T) {
	ctx, ns := setup(t, enabled)
	_, stderr, err := env.KubectlInput(ctx, podYAML(ns, "bad", `sidecar.meshwarden.io/proxyCPU: lots`), "apply", "-f", "-")
	if err == nil {
		t.Fatal("kubectl apply of a pod with proxyCPU=lots succeeded, want a denial")
	}
	t.Logf("kubectl stderr: %s", stderr)
	for _, want := range []string{"denied the request", "sidecar.meshwarden.io/proxyCPU", `"lots"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("kubectl stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestKubectlServerDryRun(t *testing.T) {
	ctx, ns := setup(t, enabled)
	out, _, err := env.KubectlInput(ctx, podYAML(ns, "dry", "")+"---\n"+deploymentYAML(ns, "dry"),
		"apply", "--dry-run=server", "-o", "json", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Items []json.RawMessage }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("decode kubectl output: %v\n%s", err, out)
	}
	var pod corev1.Pod
	if len(list.Items) != 2 || json.Unmarshal(list.Items[0], &pod) != nil {
		t.Fatalf("want a Pod and a Deployment back, got:\n%s", out)
	}
	if !injected(&pod) {
		t.Errorf("dry-run pod has containers %v, want it injected", containerNames(&pod))
	}
	if _, err := env.Client().CoreV1().Pods(ns).Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run created the pod (get: %v)", err)
	}
}

// Re-applying changes nothing, and the injector being called twice in one admission (a second
// webhook entry at the same URL forces the API server to reinvoke) still injects exactly once.
func TestReapplyAndReinvocationChangeNothing(t *testing.T) {
	ctx, ns := setup(t, map[string]string{injectLabel: "enabled", "e2e.meshwarden.io/twice": "true"})
	twice := cluster.MutatingWebhookConfiguration(mesh.WebhookOptions())
	twice.Name = "meshwarden-e2e-twice"
	twice.Webhooks[0].Name = "twice.e2e.meshwarden.io"
	twice.Webhooks[0].NamespaceSelector.MatchLabels = map[string]string{"e2e.meshwarden.io/twice": "true"}
	hooks := env.Client().AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := hooks.Create(ctx, twice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hooks.Delete(context.Background(), twice.Name, metav1.DeleteOptions{}) })
	time.Sleep(time.Second) // let the API server's informer see the second webhook

	manifest := podYAML(ns, "again", `sidecar.meshwarden.io/proxyCPU: 50m`) + "---\n" + deploymentYAML(ns, "again")
	if _, _, err := env.KubectlInput(ctx, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	pods := env.Client().CoreV1().Pods(ns)
	before, err := pods.Get(ctx, "again", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if names := containerNames(before); !injected(before) || hasDuplicates(names) {
		t.Errorf("pod containers = %v, want %s and %s exactly once", names, proxyName, initName)
	}
	deployPods := waitPods(ctx, t, ns, "again", 2) // the bare pod shares the label: 1 + 1 replica
	out, _, err := env.KubectlInput(ctx, manifest, "apply", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "unchanged") != 2 {
		t.Errorf("second apply changed something:\n%s", out)
	}
	after, err := pods.Get(ctx, "again", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if before.ResourceVersion != after.ResourceVersion {
		t.Errorf("pod resourceVersion %s → %s after re-apply", before.ResourceVersion, after.ResourceVersion)
	}
	if diff := cmp.Diff(before.Spec, after.Spec); diff != "" {
		t.Errorf("pod spec changed after re-apply (-before +after):\n%s", diff)
	}
	time.Sleep(time.Second) // a changed template would roll out new pods by now
	if diff := cmp.Diff(podNames(deployPods), podNames(waitPods(ctx, t, ns, "again", 2))); diff != "" {
		t.Errorf("pods replaced after re-apply (-before +after):\n%s", diff)
	}
}

func hasDuplicates(names []string) bool {
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			return true
		}
		seen[n] = true
	}
	return false
}

func podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return names
}

// The demo in examples/ does what `make run` tells users it does.
func TestExamples(t *testing.T) {
	ctx, _ := setup(t, nil)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Kubectl(ctx, "apply", "-f", filepath.Join(root, "examples")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client().CoreV1().Namespaces().Delete(context.Background(), "demo", metav1.DeleteOptions{})
	})
	for name, want := range map[string]bool{"httpbin": true, "no-sidecar": false} {
		for _, p := range waitPods(ctx, t, "demo", name, 1) {
			if injected(&p) != want {
				t.Errorf("demo pod %s: containers %v, injected = %v, want %v", p.Name, containerNames(&p), !want, want)
			}
		}
	}
}
