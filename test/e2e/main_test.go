// Package e2e runs meshwarden against a real local control plane (test/cluster): the API server
// itself calls the webhook, kube-controller-manager creates the pods of Deployments, StatefulSets
// and Jobs, and kwok runs them on a fake node. TestMain starts everything once; each test works in
// its own namespace.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/test/cluster"
)

var (
	env       *cluster.Cluster
	mesh      *cluster.Meshwarden
	skipSuite string // non-empty: every test skips with this reason
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	// `make test` runs every package a second time for benchmarks with -run '^$'; this package has
	// none, so do not start a control plane for nothing.
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "^$" {
		return m.Run()
	}
	binDir, err := cluster.BinDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if missing := cluster.MissingTools(binDir); len(missing) > 0 {
		msg := fmt.Sprintf("control-plane tools missing from %s: %v; run `make tools` (make test does)", binDir, missing)
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "e2e: FAIL:", msg)
			return 1
		}
		skipSuite = msg
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	root, _ := cluster.RepoRoot()
	runParent := filepath.Join(root, "_run")
	// Runs of other engineers may share this checkout: each run gets its own directory, and only
	// directories whose owner died are swept.
	cluster.SweepStale(filepath.Join(runParent, "e2e-*"), binDir)
	if err := os.MkdirAll(runParent, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp(runParent, "e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	start := time.Now()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...) }
	env, err = cluster.Start(ctx, cluster.Options{Dir: dir, BinDir: binDir, Logf: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start control plane:", err)
		return 1
	}
	code := 1
	defer func() {
		env.Stop()
		if code == 0 {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", dir)
		}
	}()
	if err := setupMeshwarden(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: control plane and meshwarden ready in %s\n", time.Since(start).Round(100*time.Millisecond))
	code = m.Run()
	return code
}

func setupMeshwarden(ctx context.Context) error {
	if err := env.InstallIstioCRDs(ctx); err != nil {
		return err
	}
	if err := env.CreateNamespace(ctx, "meshwarden", nil); err != nil {
		return err
	}
	var err error
	if mesh, err = env.StartMeshwarden(ctx, cluster.MeshwardenOptions{}); err != nil {
		return fmt.Errorf("start meshwarden serve: %w", err)
	}
	if err := env.RegisterWebhooks(ctx, mesh.WebhookOptions()); err != nil {
		return err
	}
	// The API server picks up webhook configurations from an informer; wait until it injects.
	if err := env.CreateNamespace(ctx, "e2e-probe", map[string]string{injectLabel: "enabled"}); err != nil {
		return err
	}
	return waitInjecting(ctx)
}

// waitInjecting waits until the API server injects a dry-run pod: the webhook configuration has
// reached its informer and meshwarden answers.
func waitInjecting(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if !mesh.Running() {
			return fmt.Errorf("meshwarden serve is not running; its log: %s", mesh.LogFile())
		}
		got, err := env.Client().CoreV1().Pods("e2e-probe").Create(ctx, newPod("probe").Pod,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && injected(got) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not inject a probe pod within 30s (last error: %v); meshwarden log: %s", err, mesh.LogFile())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// setup skips the test when the suite cannot run and returns a fresh namespace for it.
func setup(t *testing.T, labels map[string]string) (context.Context, string) {
	t.Helper()
	if skipSuite != "" {
		t.Skip(skipSuite)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	ns := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(ns) > 55 {
		ns = ns[:55]
	}
	if err := env.CreateNamespace(ctx, ns, labels); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Background: t.Context is already canceled during cleanup.
		_ = env.Client().CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	return ctx, ns
}

// Shared names from docs/architecture.md.
const (
	injectLabel    = "meshwarden.io/inject"
	podInjectLabel = "sidecar.meshwarden.io/inject"
	proxyName      = "istio-proxy" // the default (istio) profile's proxy container
	initName       = "meshwarden-init"
)

var enabled = map[string]string{injectLabel: "enabled"}

// containerNames lists init containers then containers.
func containerNames(p *corev1.Pod) []string {
	var names []string
	for _, c := range p.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	return names
}

func injected(p *corev1.Pod) bool {
	var proxy, init bool
	for _, n := range containerNames(p) {
		proxy = proxy || n == proxyName
		init = init || n == initName
	}
	return proxy && init
}
