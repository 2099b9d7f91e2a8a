package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// MeshwardenOptions configures StartMeshwarden.
type MeshwardenOptions struct {
	// Binary is the meshwarden executable; default: built from ./cmd/meshwarden into BinDir.
	Binary string
	// Namespace is meshwarden's own namespace (--namespace); default "meshwarden".
	Namespace string
	// Config is extra top-level YAML for the config file (see config/), e.g. "injection: {...}".
	// The helper's file already sets certs (files mode, the throwaway certificate); do not repeat it.
	Config string
	// Args are extra `serve` flags, e.g. --templates-dir.
	Args []string
}

// Meshwarden is a `meshwarden serve` subprocess with a throwaway CA and a serving certificate for
// 127.0.0.1, talking to the cluster as admin.
type Meshwarden struct {
	proc    *process
	args    []string // serve flags without the health and metrics addresses
	started bool
	client  *http.Client

	WebhookPort, HealthPort int
	MetricsPort             int
	CertDir                 string
	CA                      *CA
	Namespace               string
}

// BuildMeshwarden builds ./cmd/meshwarden of the checkout into binDir and returns its path.
func BuildMeshwarden(ctx context.Context, binDir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(binDir, "meshwarden")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/meshwarden")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/meshwarden: %w\n%s", err, b)
	}
	return out, nil
}

// StartMeshwarden runs `meshwarden serve` against the cluster and waits until its webhook port
// serves TLS with the new certificate and /healthz answers. It does not register webhook
// configurations; pass m.WebhookOptions() to RegisterWebhooks for that.
func (c *Cluster) StartMeshwarden(ctx context.Context, o MeshwardenOptions) (*Meshwarden, error) {
	if o.Binary == "" {
		var err error
		if o.Binary, err = BuildMeshwarden(ctx, c.binDir); err != nil {
			return nil, err
		}
	}
	if o.Namespace == "" {
		o.Namespace = defaultOwnNamespace
	}
	ca, err := NewCA("meshwarden-webhook-ca")
	if err != nil {
		return nil, err
	}
	serving, err := ca.Serving("meshwarden-webhook")
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(c.dir, "meshwarden-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	if _, _, err := serving.Write(certDir, "tls"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), ca.CertPEM, 0o600); err != nil {
		return nil, err
	}
	// files mode: serve the certificate we made; meshwarden keeps caBundle equal to our ca.crt.
	configFile := filepath.Join(c.dir, "meshwarden.yaml")
	config := fmt.Sprintf("apiVersion: config.meshwarden.io/v1alpha1\nkind: MeshwardenConfig\ncerts:\n  mode: files\n  dir: %s\n%s\n", certDir, o.Config)
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	m := &Meshwarden{
		client:      &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		WebhookPort: ports[0], HealthPort: ports[1], MetricsPort: ports[2],
		CertDir: certDir, CA: ca, Namespace: o.Namespace,
	}
	m.args = append([]string{"serve", "--config=" + configFile,
		"--kubeconfig=" + c.kubeconfig, "--namespace=" + o.Namespace,
		"--webhook-host=127.0.0.1", "--webhook-port=" + strconv.Itoa(m.WebhookPort),
		"--cert-dir=" + certDir,
	}, o.Args...)
	m.proc = &process{name: "meshwarden", path: o.Binary, dir: c.dir}
	c.procs = append(c.procs, m.proc)
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Start (re)starts a stopped meshwarden with the same flags, webhook port and certificate and
// waits until it serves. HealthPort and MetricsPort may change on a restart.
func (m *Meshwarden) Start(ctx context.Context) error {
	if m.proc.running() {
		return nil
	}
	if m.started {
		// The webhook port is in the webhook configurations and must stay; the others are
		// picked again in case something took them while meshwarden was down.
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		m.HealthPort, m.MetricsPort = ports[0], ports[1]
	}
	m.started = true
	m.proc.args = append(m.args[:len(m.args):len(m.args)],
		"--metrics-addr=127.0.0.1:"+strconv.Itoa(m.MetricsPort), "--health-addr=127.0.0.1:"+strconv.Itoa(m.HealthPort))
	if err := m.proc.start(); err != nil {
		return err
	}
	healthz := fmt.Sprintf("http://127.0.0.1:%d/healthz", m.HealthPort)
	return poll(ctx, time.Minute, m.proc, func(ctx context.Context) error {
		for _, url := range []string{healthz, m.URL("/")} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := m.client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if url == healthz && resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
		}
		return nil
	})
}

// Stop kills the meshwarden process (the cluster keeps running), e.g. to test failure policies.
func (m *Meshwarden) Stop() { m.proc.stop(5 * time.Second) }

// Running reports whether the process is alive.
func (m *Meshwarden) Running() bool { return m.proc.running() }

// LogFile is where the process's stdout and stderr go.
func (m *Meshwarden) LogFile() string { return m.proc.logFile() }

// URL is the webhook server's URL for path, e.g. URL("/inject").
func (m *Meshwarden) URL(path string) string {
	return "https://127.0.0.1:" + strconv.Itoa(m.WebhookPort) + path
}

// HTTPClient trusts the webhook's CA.
func (m *Meshwarden) HTTPClient() *http.Client { return m.client }

// WebhookOptions returns options for RegisterWebhooks pointing at this process.
func (m *Meshwarden) WebhookOptions() WebhookOptions {
	return WebhookOptions{BaseURL: m.URL(""), CABundle: m.CA.CertPEM, OwnNamespace: m.Namespace}
}
