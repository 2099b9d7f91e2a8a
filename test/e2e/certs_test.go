package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/test/cluster"
)

// selfServe is a `meshwarden serve` in self cert mode that this test starts and stops itself.
type selfServe struct {
	cmd        *exec.Cmd
	healthPort int
	log        string
	exited     chan struct{}
}

// startSelfServe runs meshwarden in self mode on the suite's webhook port (the suite's own process
// must be stopped first), so the registered webhook configurations reach it unchanged.
func startSelfServe(t *testing.T, port int, certsYAML string) *selfServe {
	t.Helper()
	ports := freeE2EPorts(t, 2)
	dir := filepath.Join(env.Dir(), "certs-e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "meshwarden.yaml")
	cfg := "apiVersion: config.meshwarden.io/v1alpha1\nkind: MeshwardenConfig\n" +
		"leaderElection:\n  leaseName: meshwarden-certs-e2e\n" +
		"certs:\n  mode: self\n  extraSANs: [\"127.0.0.1\"]\n" + certsYAML
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &selfServe{healthPort: ports[0], log: filepath.Join(dir, "meshwarden.log"), exited: make(chan struct{})}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(filepath.Join(env.BinDir(), "meshwarden"), "serve", "--config="+cfgFile,
		"--kubeconfig="+env.Kubeconfig(), "--namespace="+mesh.Namespace,
		"--webhook-host=127.0.0.1", "--webhook-port="+strconv.Itoa(port),
		"--health-addr=127.0.0.1:"+strconv.Itoa(ports[0]), "--metrics-addr=127.0.0.1:"+strconv.Itoa(ports[1]))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.exited) }()
	return s
}

// stop sends SIGTERM and waits (bounded), then kills.
func (s *selfServe) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *selfServe) ready(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/readyz", s.healthPort), nil)
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

func freeE2EPorts(t *testing.T, n int) []int {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// poll retries check every 100ms until it passes or timeout passes, returning how long it took.
func poll(t *testing.T, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = check(); err == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
	return 0
}

// TestCertsSelfMode swaps the suite's files-mode meshwarden for one in self mode with short
// lifetimes, on a cluster where its Secret does not exist yet: it must create the certificates,
// inject caBundle, turn ready, inject a pod created right after, restore a clobbered caBundle, and
// rotate serving certificate and CA while pods keep being created, none failing.
func TestCertsSelfMode(t *testing.T) {
	ctx, ns := setup(t, enabled)
	ctx, cancel := context.WithTimeout(ctx, 100*time.Second) // setup's 2 minutes cover cleanup too
	defer cancel()
	secrets := env.Client().CoreV1().Secrets(mesh.Namespace)
	if err := secrets.Delete(ctx, "meshwarden-webhook-tls", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	mesh.Stop()
	t.Cleanup(func() {
		// Give the suite its files-mode meshwarden back; its keeper restores the caBundle.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := mesh.Start(ctx); err != nil {
			t.Errorf("restarting the suite's meshwarden: %v", err)
		} else if err := waitInjecting(ctx); err != nil {
			t.Errorf("suite's meshwarden not injecting again: %v", err)
		}
	})
	s := startSelfServe(t, mesh.WebhookPort, "  caValidity: 30s\n  certValidity: 10s\n  renewFraction: 0.5\n")
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("self-mode meshwarden log:\n%s", b)
		}
	})

	took := poll(t, 60*time.Second, "self-mode meshwarden ready", func() error { return s.ready(ctx) })
	t.Logf("ready %s after start", took)
	createPod := func(name string) error {
		p, err := env.Client().CoreV1().Pods(ns).Create(ctx, newPod(name).Pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if !injected(p) {
			return fmt.Errorf("pod %s not injected: %v", name, containerNames(p))
		}
		return nil
	}
	if err := createPod("right-after-ready"); err != nil {
		t.Fatalf("a pod created right after readiness: %v", err)
	}
	bundleMatches := func() error {
		sec, err := secrets.Get(ctx, "meshwarden-webhook-tls", metav1.GetOptions{})
		if err != nil {
			return err
		}
		m, err := env.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, cluster.WebhookConfigName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, w := range m.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, sec.Data["ca.crt"]) {
				return fmt.Errorf("caBundle of %s differs from the Secret's ca.crt", w.Name)
			}
		}
		return nil
	}
	if err := bundleMatches(); err != nil {
		t.Fatal(err)
	}

	m, err := env.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, cluster.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Webhooks {
		m.Webhooks[i].ClientConfig.CABundle = []byte("garbage")
	}
	if _, err := env.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	took = poll(t, 10*time.Second, "caBundle restored and pods injected again", func() error {
		n++
		if err := bundleMatches(); err != nil {
			return err
		}
		return createPod(fmt.Sprintf("after-clobber-%d", n))
	})
	t.Logf("caBundle restored, pods injected again %s after it was clobbered", took)

	// Rotation under load: 40s covers several serving certificates and at least one CA rotation.
	serials := map[string]bool{}
	var created, failed int
	var firstErr error
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); {
		if err := createPod(fmt.Sprintf("load-%d", created+failed)); err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		} else {
			created++
		}
		if sec, err := secrets.Get(ctx, "meshwarden-webhook-tls", metav1.GetOptions{}); err == nil {
			serials[string(sec.Data[corev1.TLSCertKey])+"|"+string(sec.Data["ca-signer.crt"])] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d pods created during rotation, %d failed; %d distinct certificate/CA pairs seen", created, failed, len(serials))
	if failed > 0 {
		t.Errorf("%d pod creations failed during rotation, first: %v", failed, firstErr)
	}
	if len(serials) < 3 {
		t.Errorf("only %d certificate/CA pairs seen in 40s; rotation did not happen", len(serials))
	}
}
