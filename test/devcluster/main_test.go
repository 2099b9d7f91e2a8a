package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshwarden/meshwarden/test/cluster"
)

// TestRunRealNode is `make run NODE=real` as the README has a user run it: meshwarden comes up from
// its chart on the real node, `kubectl apply -f examples/real-node` gives two injected pods 2/2
// Running, and Ctrl-C leaves no network namespace or bridge of the node behind (TestRealNode, in
// test/cluster, compares the whole host state).
func TestRunRealNode(t *testing.T) {
	binDir, err := cluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cluster.RequireTools(t, binDir, slices.Concat(cluster.MissingTools(binDir), cluster.MissingNodeTools(binDir), cluster.MissingIstioTools(binDir), cluster.MissingHelm(binDir)),
		"run as root after make deps tools node-tools istio-tools")
	root, _ := cluster.RepoRoot()
	dir := cluster.TestRunDir(t, binDir, "devcluster-test")

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	ready := &firstWrite{done: make(chan struct{})}
	var stderr strings.Builder
	var mu sync.Mutex
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--dir", dir, "--node=real"}, ready, lockedWriter{&mu, &stderr})
	}()
	// However the test ends, the run stops before the test binary exits, so nothing of the node is left.
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		stop()
		select {
		case <-errc:
		case <-time.After(2 * time.Minute):
		}
	})
	select {
	case <-ready.done:
	case err := <-errc:
		t.Fatalf("make run NODE=real exited before it was ready: %v\n%s", err, locked(&mu, &stderr))
	case <-time.After(6 * time.Minute):
		t.Fatalf("make run NODE=real not ready within 6 minutes:\n%s", locked(&mu, &stderr))
	}

	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	kubectl := exec.CommandContext(ctx, filepath.Join(binDir, "kubectl"), "--kubeconfig", kubeconfig, "apply", "-f", filepath.Join(root, "examples", "real-node"))
	if out, err := kubectl.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply -f examples/real-node: %v\n%s", err, out)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pods, err := client.CoreV1().Pods("demo-real").List(ctx, metav1.ListOptions{})
		if err == nil && len(pods.Items) == 2 && allRunningInjected(pods.Items) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("examples/real-node: pods not 2/2 Running and injected within 3 minutes (%v): %+v", err, pods)
		}
		time.Sleep(time.Second)
	}

	stop() // Ctrl-C
	stopped = true
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("make run NODE=real: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("make run NODE=real did not stop within 2 minutes of Ctrl-C")
	}
	// Other packages' tests run beside this one and make namespaces of their own: look for this run's.
	if left := leftovers(t); left != "" {
		t.Errorf("left on the host after Ctrl-C:\n%s", left)
	}
	if !t.Failed() {
		_ = os.RemoveAll(dir)
	}
}

// allRunningInjected: every pod Running with every container ready, and the proxy among them.
func allRunningInjected(pods []corev1.Pod) bool {
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.Annotations["sidecar.meshwarden.io/status"] == "" {
			return false
		}
		proxy := false
		for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			proxy = proxy || (s.Name == "istio-proxy" && s.Ready)
		}
		for _, s := range p.Status.ContainerStatuses {
			if !s.Ready {
				return false
			}
		}
		if !proxy {
			return false
		}
	}
	return true
}

// leftovers lists what this run's real node would leave on the host if Ctrl-C missed it: its network
// namespace (named after this process) and its bridges, which must only ever exist inside it.
func leftovers(t *testing.T) string {
	t.Helper()
	var left []string
	netns, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, netns)
	}
	for _, l := range strings.Split(string(netns), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "mw-node-"+strconv.Itoa(os.Getpid()) {
			left = append(left, "network namespace "+f[0])
		}
	}
	links, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, links)
	}
	for _, l := range strings.Split(string(links), "\n") {
		if strings.Contains(l, " mw-node0") || strings.Contains(l, " mw-cni0") {
			left = append(left, "link "+l)
		}
	}
	return strings.Join(left, "\n")
}

// firstWrite closes done when run prints its usage, which it does once everything is up.
type firstWrite struct {
	once sync.Once
	done chan struct{}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.done) })
	return len(p), nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func locked(mu *sync.Mutex, b *strings.Builder) string {
	mu.Lock()
	defer mu.Unlock()
	return b.String()
}
