// Command devcluster is `make run`: it starts the local control plane from bin/ (see test/cluster),
// installs Istio's CRDs, runs `meshwarden serve` against it, registers the webhook configurations,
// prints how to use the cluster and keeps running until SIGINT/SIGTERM, then stops everything.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/hack/images"
	"github.com/meshwarden/meshwarden/test/cluster"
)

func main() {
	// `make run` is our parent: if make dies (killed, or signalled without passing it on), treat
	// that as SIGTERM so the cluster never outlives the command that started it.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root, err := cluster.RepoRoot()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("devcluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", filepath.Join(root, "_run", "devcluster"), "run directory (wiped at start)")
	nodes := fs.Int("nodes", 1, "number of kwok fake nodes")
	webhook := fs.Bool("webhook", true, "run `meshwarden serve` and register the webhook configurations")
	policy := fs.String("failure-policy", "Fail", "failurePolicy of the injection webhook: Fail or Ignore")
	serveArgs := fs.String("serve-args", "", "extra flags for `meshwarden serve`, space-separated")
	istiod := fs.Bool("istiod", true, "run istiod (built by make istio-tools) beside meshwarden: xDS, the CA and istio-ca-root-cert")
	node := fs.String("node", "kwok", "kwok: fake nodes only; real: also a real node (kubelet, containerd, runc; root, make node-tools)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "==> "+format+"\n", a...) }

	start := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{Dir: *dir, Nodes: *nodes, Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping every process; state stays in %s until the next run", c.Dir())
		c.Stop()
	}()
	logf("installing Istio CRDs")
	if err := c.InstallIstioCRDs(ctx); err != nil {
		return err
	}
	var is *cluster.Istiod
	if *istiod {
		if missing := cluster.MissingIstioTools(c.BinDir()); len(missing) > 0 {
			return fmt.Errorf("istiod's binaries are missing from %s (%v): run make istio-tools, or make run RUN_ARGS=--istiod=false", c.BinDir(), missing)
		}
		logf("starting istiod")
		if is, err = cluster.StartIstiod(ctx, c, cluster.IstiodOptions{}); err != nil {
			return err
		}
		logf("istiod serves xDS and the CA on %s (log: %s)", is.SecureGRPCAddr(), is.LogFile())
	}
	switch *node {
	case "kwok":
	case "real":
		if err := startRealNode(ctx, c, is, logf); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--node=%s: want kwok or real", *node)
	}
	switch {
	case *webhook && *node == "real":
		// meshwarden runs as the cluster would run it: from its chart, as pods on the real node.
		if *serveArgs != "" {
			return fmt.Errorf("--serve-args applies to meshwarden as a host process; with --node=real it runs from its chart")
		}
		logf("installing meshwarden from its chart on the real node (failurePolicy %s)", *policy)
		if err := c.InstallChartOnRealNode(ctx, "--set", "webhook.failurePolicy="+*policy); err != nil {
			return err
		}
		logf("meshwarden runs as pods: kubectl -n %s get pods -o wide", cluster.ChartNamespace)
	case *webhook:
		if err := startMeshwarden(ctx, c, admissionv1.FailurePolicyType(*policy), strings.Fields(*serveArgs), logf); err != nil {
			return err
		}
	default:
		logf("--webhook=false: meshwarden is not running, pods are not injected")
	}
	logf("ready in %s", time.Since(start).Round(time.Second))
	printUsage(stdout, c, root, *node == "real")
	<-ctx.Done()
	return nil
}

func startMeshwarden(ctx context.Context, c *cluster.Cluster, policy admissionv1.FailurePolicyType, args []string, logf func(string, ...any)) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "meshwarden"}}
	if _, err := c.Client().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	logf("building and starting meshwarden serve")
	m, err := c.StartMeshwarden(ctx, cluster.MeshwardenOptions{Args: args})
	if err != nil {
		return fmt.Errorf("%w\n(start without the webhook: make run RUN_ARGS=--webhook=false)", err)
	}
	opts := m.WebhookOptions()
	opts.InjectFailurePolicy = policy
	if err := c.RegisterWebhooks(ctx, opts); err != nil {
		return err
	}
	logf("meshwarden serves %s (log: %s)", m.URL("/inject"), m.LogFile())
	go supervise(ctx, m, logf)
	return nil
}

// supervise restarts meshwarden when it exits, as the kubelet would restart its pod (it exits on
// purpose, e.g. when it loses its leader lease while the API server is unreachable).
func supervise(ctx context.Context, m *cluster.Meshwarden, logf func(string, ...any)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		if m.Running() || ctx.Err() != nil {
			continue
		}
		logf("meshwarden exited (log: %s); restarting it", m.LogFile())
		if err := m.Start(ctx); err != nil && ctx.Err() == nil {
			logf("restart meshwarden: %v", err)
		}
	}
}

// startRealNode builds the node's images (make images' builder), starts the real node beside the kwok
// node, and forwards istiod's port on the node to the local istiod, for pods that resolve istiod's
// name to the node (examples/real-node).
func startRealNode(ctx context.Context, c *cluster.Cluster, is *cluster.Istiod, logf func(string, ...any)) error {
	if missing := cluster.MissingNodeTools(c.BinDir()); len(missing) > 0 {
		return fmt.Errorf("--node=real needs %v: run make run NODE=real as root (it builds node-tools)", missing)
	}
	logf("building the real node's images")
	meshwarden, _ := images.Lookup("meshwarden") // for the chart's pods
	res, err := images.Build(ctx, images.Options{Arch: runtime.GOARCH, Epoch: time.Unix(0, 0).UTC(), OutDir: filepath.Join(c.BinDir(), "images")},
		append(images.NodeImages(c.BinDir()), meshwarden)...)
	if err != nil {
		return err
	}
	var tarballs []string
	pause := ""
	for _, r := range res {
		tarballs = append(tarballs, r.Path)
		logf("image %s %s", r.Image.Ref(), r.Digest)
		if r.Image.Name == "pause" {
			pause = r.Image.Ref()
		}
	}
	n, err := c.StartRealNode(ctx, cluster.RealNodeOptions{Images: tarballs, PauseImage: pause})
	if err != nil {
		return err
	}
	if is != nil {
		return n.Forward(net.JoinHostPort(n.IP(), "15012"), is.SecureGRPCAddr())
	}
	return nil
}

func printUsage(w io.Writer, c *cluster.Cluster, root string, realNode bool) {
	examples, _ := filepath.Rel(mustGetwd(), filepath.Join(root, "examples"))
	fmt.Fprintf(w, `
The meshwarden dev cluster is running (logs: %[1]s/*.log). In another shell:

  export KUBECONFIG=%[2]s
  export PATH=%[3]s:$PATH        # kubectl, helm built by make tools

  kubectl get nodes
  kubectl apply -f %[4]s        # namespace "demo" labelled meshwarden.io/inject=enabled + a Deployment
  kubectl -n demo get pods -o jsonpath='{range .items[*]}{.metadata.name}: {.spec.initContainers[*].name} {.spec.containers[*].name}{"\n"}{end}'
  kubectl create namespace plain && kubectl -n plain run nginx --image=nginx   # not injected
  kubectl label namespace plain meshwarden.io/inject=enabled                   # new pods there are

Press Ctrl-C to stop everything.
`, c.Dir(), c.Kubeconfig(), c.BinDir(), examples)
	if realNode {
		fmt.Fprintf(w, `
A real node runs beside the kwok node (taint %[1]s, label %[2]s=%[3]s): its pods really run.

  kubectl apply -f %[4]s/real-node    # 2 pods of a Deployment on the real node, injected
  kubectl -n demo-real get pods -o wide       # 2/2 Running: meshwarden-init ran, istio-proxy started
  kubectl -n %[5]s get pods -o wide           # meshwarden itself, from its chart, on the real node
`, cluster.RealNodeTaint, cluster.RealNodeLabel, cluster.RealNodeValue, examples, cluster.ChartNamespace)
	}
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}
