package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// faultReplica is one `meshwarden serve` replica the fault tests start, stop and restart
// themselves. It serves a certificate from the suite's webhook CA, so the caBundle the suite
// registered stays valid for it, and keeps its ports across restarts.
type faultReplica struct {
	name                                 string
	args                                 []string
	webhookPort, healthPort, metricsPort int
	log                                  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// faultLease keeps the fault replicas' leader election apart from the suite's meshwarden.
const faultLease = "meshwarden-faults"

// newFaultReplica prepares (but does not start) a replica; extraConfig is top-level config YAML
// and args are extra serve flags.
func newFaultReplica(t *testing.T, name, extraConfig string, args ...string) *faultReplica {
	t.Helper()
	dir := filepath.Join(env.Dir(), "faults", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	serving, err := mesh.CA.Serving("meshwarden-webhook")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := serving.Write(dir, "tls"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), mesh.CA.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "apiVersion: config.meshwarden.io/v1alpha1\nkind: MeshwardenConfig\n" +
		"leaderElection:\n  leaseName: " + faultLease + "\n" +
		"certs:\n  mode: files\n  dir: " + dir + "\n  patchCABundle: false\n" + extraConfig
	cfgFile := filepath.Join(dir, "meshwarden.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := faultPorts(t, 3)
	r := &faultReplica{name: name, webhookPort: ports[0], healthPort: ports[1], metricsPort: ports[2],
		log: filepath.Join(dir, "meshwarden.log")}
	r.args = append([]string{"serve", "--config=" + cfgFile,
		"--kubeconfig=" + env.Kubeconfig(), "--namespace=" + mesh.Namespace,
		"--webhook-host=127.0.0.1", "--webhook-port=" + strconv.Itoa(r.webhookPort),
		"--health-addr=127.0.0.1:" + strconv.Itoa(r.healthPort),
		"--metrics-addr=127.0.0.1:" + strconv.Itoa(r.metricsPort),
	}, args...)
	t.Cleanup(r.stop)
	return r
}

// start launches the process and waits (bounded) until /readyz answers 200.
func (r *faultReplica) start(ctx context.Context) error {
	r.mu.Lock()
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	binary := filepath.Join(env.BinDir(), "meshwarden")
	if b := os.Getenv("MESHWARDEN_FAULT_BINARY"); b != "" {
		binary = b // a candidate build, to try a fix against the fault tests
	}
	cmd := exec.Command(binary, r.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		r.mu.Unlock()
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	r.starts++
	r.mu.Unlock()

	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-exited:
			return fmt.Errorf("replica %s exited while starting; log %s:\n%s", r.name, r.log, faultTail(r.log, 10))
		default:
		}
		if err := r.ready(ctx); err == nil {
			return nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("replica %s not ready within 1m: %v (log %s)", r.name, err, r.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM to the process group and waits at most 30s before SIGKILL, as the kubelet
// does with terminationGracePeriodSeconds. It is a no-op when the replica is not running.
func (r *faultReplica) stop() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// running reports whether the process is alive.
func (r *faultReplica) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *faultReplica) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/readyz", r.healthPort), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

func (r *faultReplica) addr() string { return "127.0.0.1:" + strconv.Itoa(r.webhookPort) }

// metric returns the sum of the samples of a Prometheus metric whose label set contains every
// string in labels (e.g. `code="200"`), scraped from the replica's /metrics.
func (r *faultReplica) metric(ctx context.Context, name string, labels ...string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", r.metricsPort), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return sumMetric(resp.Body, name, labels...)
}

// apiserverMetric is metric for kube-apiserver's /metrics.
func apiserverMetric(ctx context.Context, name string, labels ...string) (float64, error) {
	b, err := env.Client().Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	return sumMetric(strings.NewReader(string(b)), name, labels...)
}

func sumMetric(r io.Reader, name string, labels ...string) (float64, error) {
	var sum float64
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, s.Err()
}

// faultLB is a TCP load balancer in front of the replicas, standing in for the Service and
// kube-proxy: new connections go round-robin to backends marked ready, skipping ones that refuse;
// connections already open stay where they are (as with conntrack) until either side closes.
type faultLB struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []*lbBackend
	next     int
	conns    sync.WaitGroup
	refused  atomic.Int64 // connections that found no backend
}

type lbBackend struct {
	addr  string
	ready atomic.Bool
}

func newFaultLB(t *testing.T) *faultLB {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &faultLB{ln: ln}
	go lb.serve()
	t.Cleanup(func() { ln.Close() })
	return lb
}

func (lb *faultLB) url() string { return "https://" + lb.ln.Addr().String() }

// add registers a backend and returns it, marked ready.
func (lb *faultLB) add(addr string) *lbBackend {
	b := &lbBackend{addr: addr}
	b.ready.Store(true)
	lb.mu.Lock()
	lb.backends = append(lb.backends, b)
	lb.mu.Unlock()
	return b
}

func (lb *faultLB) serve() {
	for {
		c, err := lb.ln.Accept()
		if err != nil {
			return
		}
		go lb.proxy(c)
	}
}

func (lb *faultLB) proxy(client net.Conn) {
	defer client.Close()
	lb.mu.Lock()
	candidates := make([]*lbBackend, 0, len(lb.backends))
	for i := range lb.backends {
		b := lb.backends[(lb.next+i)%len(lb.backends)]
		if b.ready.Load() {
			candidates = append(candidates, b)
		}
	}
	lb.next++
	lb.mu.Unlock()
	var backend net.Conn
	for _, b := range candidates {
		if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
			backend = c
			break
		}
	}
	if backend == nil {
		lb.refused.Add(1)
		return
	}
	defer backend.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done
	<-done
}

// useWebhookURL points the suite's webhook configurations at baseURL (with the suite's CA and
// failurePolicy Fail) until the test ends, then restores them and waits until the suite's
// meshwarden injects again.
func useWebhookURL(ctx context.Context, t *testing.T, baseURL string) {
	t.Helper()
	opts := mesh.WebhookOptions()
	opts.BaseURL = baseURL
	if err := env.RegisterWebhooks(ctx, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if !mesh.Running() {
			if err := mesh.Start(ctx); err != nil {
				t.Errorf("restart the suite's meshwarden: %v", err)
			}
		}
		if err := env.RegisterWebhooks(ctx, mesh.WebhookOptions()); err != nil {
			t.Error(err)
		}
		if err := waitInjecting(ctx); err != nil {
			t.Error(err)
		}
	})
}

// waitInjectingIn waits until a dry-run pod in ns comes back injected and passes check (nil: any),
// i.e. the API server's informer has the webhook configuration and a replica answers.
func waitInjectingIn(ctx context.Context, ns string, timeout time.Duration, check func(*corev1.Pod) bool) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		got, err := env.Client().CoreV1().Pods(ns).Create(ctx, newPod("probe").Pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			if injected(got) && (check == nil || check(got)) {
				return nil
			}
			last = fmt.Errorf("dry-run pod not as expected: containers %v", containerNames(got))
		} else {
			last = err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not injecting within %s: %w", timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func faultPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func faultTail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// faultEnvInt reads a positive integer from the environment, else def.
func faultEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
