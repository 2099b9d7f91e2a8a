package e2e

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshwarden/meshwarden/test/cluster"
)

// TestIstioMeshPod proves that a pod injected with the istio profile joins a real Istio mesh. It
// applies a Service, a Deployment with an httpGet readiness probe, a DestinationRule with a subset
// and a VirtualService; then it takes the pod exactly as meshwarden injected it and does what the
// kubelet would: meshwarden-init with the init container's args and pilot-agent with the proxy's,
// in the pod's own network namespace, as the proxy's user, with its env and volumes resolved from
// the pod. istiod is real (built from istio.io/istio); Envoy, which cannot run here, is replaced
// by test/standin/envoy at the agent's binary path, which checks the bootstrap and fetches xDS
// and SDS as Envoy would.
func TestIstioMeshPod(t *testing.T) {
	ctx, ns := setup(t, enabled)
	requireRoot(t, "ip", "nft", "unshare", "setpriv", "mount")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	bins := buildPodPrograms(ctx, t)
	istiod := suiteIstiod(t)

	host := "sample." + ns + ".svc.cluster.local"
	if out, stderr, err := env.KubectlInput(ctx, meshApp(ns), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", err, out, stderr)
	}
	pod := runningPod(ctx, t, ns, "sample")
	proxy, init, app := findContainer(pod, "istio-proxy"), findContainer(pod, initName), findContainer(pod, "app")
	if proxy == nil || init == nil || app == nil {
		t.Fatalf("injected pod has containers %v, want istio-proxy, %s and app", containerNames(pod), initName)
	}

	// The pod's network: its IP from the node, capture programmed by the init container's args.
	nn := newPodNetns(t, pod.Status.PodIP)
	if out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nn.pod, bins.init}, init.Args...)...).CombinedOutput(); err != nil {
		t.Fatalf("meshwarden-init %v: %v\n%s", init.Args, err, out)
	}

	// The app: serves its readiness path on its port, and can be stopped.
	appPort := app.Ports[0].ContainerPort
	appLn, err := listenIn(nn.pod, fmt.Sprintf("0.0.0.0:%d", appPort))
	if err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool
	ready.Store(true)
	// The app answers its original readiness path and nothing else, so a probe that reached it on
	// the wrong path would fail.
	appSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" || !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})}
	go func() { _ = appSrv.Serve(appLn) }()
	t.Cleanup(func() { appSrv.Close() })

	// istiod's address resolves to 127.0.0.1 in the pod (the hosts file below), where a forwarder
	// carries the agent's connections to the real istiod on the host's loopback.
	forward(t, nn.pod, "127.0.0.1:15012", istiod.SecureGRPCAddr())

	root := podRoot(ctx, t, pod, proxy)
	agentLog := runAgent(ctx, t, nn, bins, pod, proxy, root)

	report := waitStandin(ctx, t, root, agentLog)
	t.Logf("istiod served node %s: %d clusters, %d listeners, %d route configurations", report.NodeID, len(report.Clusters), len(report.Listeners), len(report.Routes))
	t.Run("workload certificate from istiod's CA", func(t *testing.T) {
		rootPEM, err := istiod.RootCertPEM(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		leaf := verifyChain(t, report.CertChainPEM, rootPEM)
		want := "spiffe://cluster.local/ns/" + ns + "/sa/sample-sa"
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
			t.Fatalf("workload certificate URIs %v, want %s", leaf.URIs, want)
		}
	})
	t.Run("clusters of the Service and the subset", func(t *testing.T) {
		for _, c := range []string{"outbound|3000||" + host, "outbound|3000|v1|" + host} {
			if !slices.Contains(report.Clusters, c) {
				t.Errorf("no cluster %s among %d: %v", c, len(report.Clusters), report.Clusters)
			}
		}
	})
	t.Run("route carries the VirtualService's timeout and subset", func(t *testing.T) {
		rc, ok := report.Routes["3000"]
		if !ok {
			t.Fatalf("no route configuration 3000; have %v", keys(report.Routes))
		}
		var found bool
		for _, vh := range rc.VirtualHosts {
			if !slices.Contains(vh.Domains, host) {
				continue
			}
			for _, r := range vh.Routes {
				found = found || (r.Cluster == "outbound|3000|v1|"+host && r.Timeout == "5s")
			}
			if !found {
				t.Fatalf("virtual host %s routes %+v, want cluster outbound|3000|v1|%s with timeout 5s", vh.Name, vh.Routes, host)
			}
		}
		if !found {
			t.Fatalf("no virtual host for %s in route 3000: %+v", host, rc.VirtualHosts)
		}
	})
	t.Run("capture leaves the agent's and proxy's ports alone", func(t *testing.T) {
		for _, target := range []struct{ port, path string }{{"15021", "/healthz/ready"}, {"15090", "/stats/prometheus"}, {"15020", "/healthz/ready"}} {
			code, body := kubeletGet(ctx, t, nn, pod.Status.PodIP, target.port, target.path)
			if code != http.StatusOK {
				t.Errorf("GET %s:%s%s from the node: %d %q, want 200 from the proxy itself", pod.Status.PodIP, target.port, target.path, code, body)
			}
		}
		// What is captured goes where Istio sends it: inbound to the app's port into 15006, the
		// app's outbound into 15001, each with its original destination.
		if got := lineFrom(ctx, t, nn.node, net.JoinHostPort(pod.Status.PodIP, fmt.Sprint(appPort))); got != fmt.Sprintf("standin:15006 %s:%d", pod.Status.PodIP, appPort) {
			t.Errorf("inbound to the app port reached %q, want the proxy's inbound listener", got)
		}
		if got := lineFrom(ctx, t, nn.pod, "10.96.0.10:80"); got != "standin:15001 10.96.0.10:80" {
			t.Errorf("the app's outbound reached %q, want the proxy's outbound listener", got)
		}
	})
	t.Run("rewritten readiness probe answers through the agent", func(t *testing.T) {
		probe := app.ReadinessProbe.HTTPGet
		if probe.Port.IntValue() != 15020 || probe.Path != "/app-health/app/readyz" {
			t.Fatalf("app readiness probe %s:%s, want the agent's /app-health/app/readyz on 15020", probe.Path, probe.Port.String())
		}
		if code, body := kubeletGet(ctx, t, nn, pod.Status.PodIP, probe.Port.String(), probe.Path); code != http.StatusOK {
			t.Fatalf("probe while the app is ready: %d %q, want 200", code, body)
		}
		ready.Store(false)
		if code, _ := kubeletGet(ctx, t, nn, pod.Status.PodIP, probe.Port.String(), probe.Path); code == http.StatusOK {
			t.Fatal("probe passed while the app answers 503")
		}
		ready.Store(true)
		appSrv.Close() // the app stops
		if code, _ := kubeletGet(ctx, t, nn, pod.Status.PodIP, probe.Port.String(), probe.Path); code == http.StatusOK {
			t.Fatal("probe passed while the app is down")
		}
	})
}

// meshApp is the workload and its mesh config: a Service, a Deployment with a named port and an
// httpGet readiness probe, a DestinationRule with subset v1 and a VirtualService with a timeout.
func meshApp(ns string) string {
	return strings.ReplaceAll(`apiVersion: v1
kind: ServiceAccount
metadata: {name: sample-sa, namespace: NS}
---
apiVersion: v1
kind: Service
metadata: {name: sample, namespace: NS}
spec:
  selector: {app: sample}
  ports: [{name: http, port: 3000, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sample, namespace: NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: sample}}
  template:
    metadata:
      labels: {app: sample, version: v1}
    spec:
      serviceAccountName: sample-sa
      containers:
      - name: app
        image: registry.example/sample:1
        ports: [{name: http, containerPort: 3000}]
        readinessProbe:
          httpGet: {path: /ready, port: http}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sample, namespace: NS}
spec:
  host: sample.NS.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sample, namespace: NS}
spec:
  hosts: [sample]
  http:
  - timeout: 5s
    route: [{destination: {host: sample, subset: v1}}]
`, "NS", ns)
}

type podPrograms struct{ init, standin, agent, bootstrap string }

// buildPodPrograms builds meshwarden-init of this checkout and the Envoy stand-in; the agent and
// the bootstrap template come from `make istio-tools`.
func buildPodPrograms(ctx context.Context, t *testing.T) podPrograms {
	t.Helper()
	repo, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/meshwarden-init", "./test/standin/envoy")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return podPrograms{
		init: filepath.Join(dir, "meshwarden-init"), standin: filepath.Join(dir, "envoy"),
		agent: filepath.Join(env.BinDir(), "pilot-agent"), bootstrap: filepath.Join(env.BinDir(), "istio", "envoy_bootstrap_tmpl.json"),
	}
}

// runningPod waits for the Deployment's pod to be scheduled and given an IP.
func runningPod(ctx context.Context, t *testing.T, ns, app string) *corev1.Pod {
	t.Helper()
	for ctx.Err() == nil {
		for _, p := range waitPods(ctx, t, ns, app, 1) {
			if p.Status.PodIP != "" && p.Spec.NodeName != "" {
				return &p
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no running %s pod in %s", app, ns)
	return nil
}

// podRoot lays out the proxy container's filesystem in a directory that stands for its root: the
// agent resolves every path relative to its working directory. Volumes are the pod's; Envoy's
// bootstrap template is image content.
func podRoot(ctx context.Context, t *testing.T, pod *corev1.Pod, proxy *corev1.Container) string {
	t.Helper()
	root, err := os.MkdirTemp("", "mwe-proxy-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil { // the proxy's user must reach it
		t.Fatal(err)
	}
	materialiseVolumes(ctx, t, pod, proxy, root, uidOf(t, proxy))
	return root
}

// runAgent starts pilot-agent with the proxy container's args and env in the pod's network
// namespace, as the container's user. A private mount namespace puts, as the image would, the
// agent and "Envoy" (the stand-in) at their paths in /usr/local/bin, and gives the pod a hosts file
// in which istiod's Service name is the forwarder on 127.0.0.1.
func runAgent(ctx context.Context, t *testing.T, nn *podNetns, bins podPrograms, pod *corev1.Pod, proxy *corev1.Container, root string) string {
	t.Helper()
	uid := uidOf(t, proxy)
	envv := containerEnv(t, pod, proxy, "2", "1073741824")
	args := make([]string, len(proxy.Args))
	for i, a := range proxy.Args {
		args[i] = expandVars(a, envv)
	}
	tmpl := filepath.Join(root, "var/lib/istio/envoy")
	if err := os.MkdirAll(tmpl, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, bins.bootstrap, filepath.Join(tmpl, "envoy_bootstrap_tmpl.json"))
	hosts := filepath.Join(root, "etc-hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost istiod.istio-system.svc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	chownAll(t, root, uid)
	const script = `set -e
hosts=$1 standin=$2 agent=$3 uid=$4; shift 4
mount --bind "$hosts" /etc/hosts
mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin
cp "$standin" /usr/local/bin/envoy
cp "$agent" /usr/local/bin/pilot-agent
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups /usr/local/bin/pilot-agent "$@"`
	cmd := exec.Command("ip", append([]string{"netns", "exec", nn.pod, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", script, "sh", hosts, bins.standin, bins.agent, itoa(uid)}, args...)...)
	cmd.Dir = root
	cmd.Env = append(envv, "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp")
	logPath := filepath.Join(root, "pilot-agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("pilot-agent log (last 4 KiB):\n%s", tailBytes(b, 4096))
		}
	})
	return logPath
}

// standinReport is what test/standin/envoy writes: the bootstrap's verdict and what Envoy got.
type standinReport struct {
	BootstrapValid bool     `json:"bootstrapValid"`
	BootstrapError string   `json:"bootstrapError"`
	NodeID         string   `json:"nodeID"`
	Clusters       []string `json:"clusters"`
	Listeners      []string `json:"listeners"`
	Routes         map[string]struct {
		VirtualHosts []struct {
			Name    string   `json:"name"`
			Domains []string `json:"domains"`
			Routes  []struct {
				Prefix  string `json:"prefix"`
				Path    string `json:"path"`
				Cluster string `json:"cluster"`
				Timeout string `json:"timeout"`
			} `json:"routes"`
		} `json:"virtualHosts"`
	} `json:"routes"`
	CertChainPEM     string   `json:"certChainPEM"`
	RootCAPEM        string   `json:"rootCAPEM"`
	ValidationErrors []string `json:"validationErrors"`
	FetchError       string   `json:"fetchError"`
	Done             bool     `json:"done"`
}

// waitStandin waits until the stand-in has its bootstrap checked and every resource Envoy asks for.
func waitStandin(ctx context.Context, t *testing.T, root, agentLog string) standinReport {
	t.Helper()
	path := filepath.Join(root, "envoy-standin-report.json")
	deadline := time.Now().Add(90 * time.Second)
	var r standinReport
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &r) == nil {
			if !r.BootstrapValid && r.BootstrapError != "" {
				t.Fatalf("the bootstrap pilot-agent wrote is not valid Envoy config: %s", r.BootstrapError)
			}
			if r.Done {
				if len(r.ValidationErrors) > 0 {
					t.Errorf("istiod sent resources Envoy would reject: %v", r.ValidationErrors)
				}
				return r
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	log, _ := os.ReadFile(agentLog)
	t.Fatalf("Envoy's stand-in did not get its configuration within 90s (report: %+v)\npilot-agent log:\n%s", r, tailBytes(log, 6000))
	return r
}

// verifyChain checks the workload certificate chain against istiod's root and returns the leaf.
func verifyChain(t *testing.T, chainPEM string, rootPEM []byte) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	rest := []byte(chainPEM)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("no certificate in the workload chain %q", chainPEM)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("istiod's root certificate does not parse")
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("workload certificate is not issued by istiod's CA: %v", err)
	}
	return certs[0]
}

// kubeletGet does what the kubelet's httpGet probe does: from the node, GET the pod's IP and port.
func kubeletGet(ctx context.Context, t *testing.T, nn *podNetns, ip, port, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialIn(ctx, nn.node, addr)
		},
	}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(ip, port)+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// lineFrom connects from namespace ns to addr and reads the one line the stand-in's capture
// listeners answer with.
func lineFrom(ctx context.Context, t *testing.T, ns, addr string) string {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := dialIn(dctx, ns, addr)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// forward listens on addr inside namespace ns and carries each connection to target on the host.
func forward(t *testing.T, ns, addr, target string) {
	t.Helper()
	ln, err := listenIn(ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
