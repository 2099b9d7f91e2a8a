// Package install tests meshwarden as a cluster runs it: installed from its chart, as real pods on a
// real node (kubelet, containerd, runc), answering the API server through its Service.
package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/hack/images"
	"github.com/meshwarden/meshwarden/test/cluster"
)

const (
	releaseNS   = cluster.ChartNamespace
	releaseName = cluster.ChartRelease
	injectLabel = "meshwarden.io/inject"
	statusKey   = "sidecar.meshwarden.io/status"
)

// TestChartOnRealNode installs the chart with its defaults (two replicas, failurePolicy Fail), its
// pods on the real node: they start, reach the API server through the kubernetes Service, become
// Ready, and the API server calls them through their Service for every pod of an enabled namespace.
// Then a rolling restart of meshwarden, under a stream of pod creations: not one creation fails and
// every pod comes back injected, because a replica always serves and a stopping one finishes what it
// has accepted.
func TestChartOnRealNode(t *testing.T) {
	binDir, err := cluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cluster.RequireTools(t, binDir, slices.Concat(cluster.MissingTools(binDir), cluster.MissingNodeTools(binDir), cluster.MissingHelm(binDir)),
		"run as root after make deps tools node-tools")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	dir := cluster.TestRunDir(t, binDir, "install")
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, BinDir: binDir, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		} else {
			t.Logf("logs kept in %s", dir)
		}
	})
	if err := c.InstallIstioCRDs(ctx); err != nil {
		t.Fatal(err)
	}

	var want []images.Image
	for _, name := range []string{"meshwarden", "pause"} {
		im, _ := images.Lookup(name)
		want = append(want, im)
	}
	built, err := images.Build(ctx, images.Options{Arch: runtime.GOARCH, Epoch: time.Unix(0, 0).UTC(), OutDir: filepath.Join(dir, "images")}, want...)
	if err != nil {
		t.Fatal(err)
	}
	var tarballs []string
	for _, r := range built {
		tarballs = append(tarballs, r.Path)
	}
	pause, _ := images.Lookup("pause")
	if _, err := c.StartRealNode(ctx, cluster.RealNodeOptions{Images: tarballs, PauseImage: pause.Ref()}); err != nil {
		t.Fatal(err)
	}

	// The chart's defaults, except where the pods run.
	if err := c.InstallChartOnRealNode(ctx); err != nil {
		t.Fatal(err)
	}

	if err := c.CreateNamespace(ctx, "shop", map[string]string{injectLabel: "enabled"}); err != nil {
		t.Fatal(err)
	}
	// The first pod may wait for the webhook's Service endpoints to reach the API server.
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := createPod(ctx, c, "first")
		if err == nil && p.Annotations[statusKey] != "" {
			break
		}
		if err == nil {
			t.Fatalf("pod %s created without injection: annotations %v", p.Name, p.Annotations)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server could not call meshwarden through its Service within a minute: %v", err)
		}
		time.Sleep(time.Second)
	}

	t.Run("rolling restart under pod creation", func(t *testing.T) {
		before := replicaSetOf(ctx, t, c)
		if out, stderr, err := c.Kubectl(ctx, "-n", releaseNS, "rollout", "restart", "deployment/"+releaseName); err != nil {
			t.Fatalf("kubectl rollout restart: %v\n%s%s", err, out, stderr)
		}
		// Bounded: at most 400 creations, within 4 minutes; it stops once the new pods serve alone.
		stop := time.Now().Add(4 * time.Minute)
		created, done := 0, false
		for i := 0; i < 400 && time.Now().Before(stop); i++ {
			p, err := createPod(ctx, c, fmt.Sprintf("during-%d", i))
			if err != nil {
				t.Fatalf("pod creation %d failed during the rolling restart: %v", i, err)
			}
			if p.Annotations[statusKey] == "" {
				t.Fatalf("pod %s was admitted without its sidecar during the rolling restart", p.Name)
			}
			created++
			if done {
				break // one more after the rollout completed: the new replicas serve
			}
			done = rolledOut(ctx, c, before)
			time.Sleep(100 * time.Millisecond)
		}
		if !done {
			t.Fatalf("the rollout did not complete within 4 minutes (%d pods created)", created)
		}
		t.Logf("%d pods created and injected during the rolling restart", created)
	})
}

// createPod creates a pod for a kwok node (its running is not the point: admission is).
func createPod(ctx context.Context, c *cluster.Cluster, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.Client().CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{})
}

func replicaSetOf(ctx context.Context, t *testing.T, c *cluster.Cluster) string {
	t.Helper()
	d, err := c.Client().AppsV1().Deployments(releaseNS).Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Annotations["deployment.kubernetes.io/revision"]
}

// rolledOut is true once the Deployment's new revision has every replica updated and ready, and no
// pod of an older one is left, not even terminating: the stream of creations covers the old pods'
// whole shutdown.
func rolledOut(ctx context.Context, c *cluster.Cluster, before string) bool {
	d, err := c.Client().AppsV1().Deployments(releaseNS).Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil || d.Annotations["deployment.kubernetes.io/revision"] == before || !complete(d) {
		return false
	}
	pods, err := c.Client().CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=meshwarden"})
	return err == nil && len(pods.Items) == int(*d.Spec.Replicas)
}

func complete(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.ReadyReplicas == want && s.Replicas == want
}
