package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	// IstioNamespace is istiod's namespace (POD_NAMESPACE); its CA state lives there.
	IstioNamespace = "istio-system"
	// RootCertConfigMap is the ConfigMap istiod writes into every namespace, with its root
	// certificate under RootCertKey.
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
)

// IstioTools lists what `make istio-tools` puts in BinDir: istiod, the agent, Envoy's bootstrap
// template (image content in Istio) and the istio.io/istio module version they were built from.
var IstioTools = []string{"pilot-discovery", "pilot-agent", "istio/envoy_bootstrap_tmpl.json", "istio/version"}

// MissingIstioTools returns the entries of IstioTools absent from binDir. Start does not need
// them; only tests that run istiod or pilot-agent do.
func MissingIstioTools(binDir string) []string {
	var missing []string
	for _, t := range IstioTools {
		if _, err := os.Stat(filepath.Join(binDir, t)); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// IstioVersion is the istio.io/istio module version the binaries in binDir were built from.
func IstioVersion(binDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(binDir, "istio", "version"))
	return strings.TrimSpace(string(b)), err
}

// IstiodOptions configures StartIstiod. The zero value is usable.
type IstiodOptions struct {
	// Binary is the pilot-discovery executable; default: <BinDir>/pilot-discovery.
	Binary string
	// Env is extra KEY=value environment; it overrides the defaults StartIstiod sets.
	Env []string
	// Args are extra `discovery` flags, e.g. --meshConfig=<file>. pilot-discovery ignores flags it
	// does not know, so a misspelt one fails silently.
	Args []string
	// Timeout bounds the wait for readiness; default 60s.
	Timeout time.Duration
}

// Istiod is a `pilot-discovery discovery` subprocess serving xDS and the CA for the cluster. It
// runs as istiod in istio-system would, but every listener is on 127.0.0.1, and it neither injects
// (meshwarden does) nor patches webhook configurations.
type Istiod struct {
	proc   *process
	client kubernetes.Interface
	dir    string

	httpAddr, grpcAddr, secureGRPCAddr, httpsAddr, monitoringAddr string
}

// istiodEnv is the environment of istiod in its own Deployment, minus what needs a pod. Empty
// webhook names switch off the patching of injector and validation webhook configurations,
// which belong to meshwarden here; INJECT_ENABLED=false keeps istiod's injector off even if an
// istio-sidecar-injector ConfigMap shows up. With one istiod there is nobody to elect, and
// skipping the election saves seconds before the CA ConfigMaps are written.
var istiodEnv = []string{
	"POD_NAMESPACE=" + IstioNamespace,
	"POD_NAME=istiod-local",
	"REVISION=default",
	"PILOT_CERT_PROVIDER=istiod",
	"CLUSTER_ID=Kubernetes",
	"JWT_POLICY=third-party-jwt",
	// Its serving certificate gets these DNS SANs (and no IP SANs).
	"ISTIOD_CUSTOM_HOST=localhost,istiod." + IstioNamespace + ".svc",
	"INJECTION_WEBHOOK_CONFIG_NAME=",
	"VALIDATION_WEBHOOK_CONFIG_NAME=",
	"INJECT_ENABLED=false",
	"ENABLE_LEADER_ELECTION=false",
}

// StartIstiod creates the istio-system namespace if missing, starts istiod against the cluster
// from an empty working directory (<run dir>/istiod; log <run dir>/istiod.log) and returns once
// /ready answers and the root certificate is published in istio-system. Cluster.Stop stops it
// too. Istio's CRDs are optional: istiod picks them up when InstallIstioCRDs adds them later.
// One istiod per cluster: a second would share its working directory and pidfile.
func StartIstiod(ctx context.Context, c *Cluster, opts IstiodOptions) (*Istiod, error) {
	if opts.Binary == "" {
		opts.Binary = filepath.Join(c.binDir, "pilot-discovery")
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("istiod: %w; run `make istio-tools` first", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: IstioNamespace}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create namespace %s: %w", IstioNamespace, err)
	}
	// Without ./etc/istio/config/mesh istiod reads the mesh config from the istio ConfigMap (or
	// uses defaults), and it keeps its DNS certificates under ./var/run/secrets: an empty directory
	// of its own keeps it from reading or writing anything outside.
	dir := filepath.Join(c.dir, "istiod")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	addr := func(i int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])) }
	i := &Istiod{
		client: c.client, dir: dir,
		httpAddr: addr(0), grpcAddr: addr(1), secureGRPCAddr: addr(2), httpsAddr: addr(3), monitoringAddr: addr(4),
	}
	args := append([]string{"discovery",
		"--kubeconfig=" + c.kubeconfig,
		"--httpAddr=" + i.httpAddr, "--grpcAddr=" + i.grpcAddr, "--secureGRPCAddr=" + i.secureGRPCAddr,
		"--httpsAddr=" + i.httpsAddr, "--monitoringAddr=" + i.monitoringAddr,
		"--ctrlz_address=127.0.0.1", "--ctrlz_port=" + strconv.Itoa(ports[5]),
		"--clusterID=Kubernetes", "--domain=cluster.local",
		// istiod drains for 10s after SIGTERM by default; nothing here needs that.
		"--shutdownDuration=1s",
	}, opts.Args...)
	i.proc = &process{name: "istiod", path: opts.Binary, args: args, dir: c.dir, workDir: dir,
		env: append(istiodEnv[:len(istiodEnv):len(istiodEnv)], opts.Env...)}
	c.logf("starting istiod (xDS+CA on %s)", i.secureGRPCAddr)
	if err := i.proc.start(); err != nil {
		return nil, err
	}
	c.procs = append(c.procs, i.proc)
	if err := i.waitReady(ctx, opts.Timeout); err != nil {
		i.Stop()
		return nil, err
	}
	return i, nil
}

func (i *Istiod) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	err := poll(ctx, timeout, i.proc, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+i.httpAddr+"/ready", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/ready: %s", resp.Status)
		}
		// Ready serves xDS; the CA is working once its root certificate is published.
		_, err = i.rootCert(ctx, IstioNamespace)
		return err
	})
	if err != nil && i.proc.running() { // an exit already carries the log tail
		err = fmt.Errorf("istiod not ready within %s: %w; last log lines from %s:\n%s",
			timeout, err, i.proc.logFile(), tail(i.proc.logFile(), 15))
	}
	return err
}

// RootCertPEM returns istiod's root certificate from the istio-ca-root-cert ConfigMap in namespace,
// waiting up to 30s (or ctx) for istiod to write it, as it does shortly after a namespace appears.
func (i *Istiod) RootCertPEM(ctx context.Context, namespace string) ([]byte, error) {
	var cert []byte
	err := poll(ctx, 30*time.Second, i.proc, func(ctx context.Context) (err error) {
		cert, err = i.rootCert(ctx, namespace)
		return err
	})
	return cert, err
}

func (i *Istiod) rootCert(ctx context.Context, namespace string) ([]byte, error) {
	cm, err := i.client.CoreV1().ConfigMaps(namespace).Get(ctx, RootCertConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	cert := cm.Data[RootCertKey]
	if cert == "" {
		return nil, errors.New("configmap " + namespace + "/" + RootCertConfigMap + " has no " + RootCertKey)
	}
	return []byte(cert), nil
}

// SecureGRPCAddr is host:port of the TLS listener for xDS and the CA (15012 in a cluster). Its
// certificate has DNS SANs only (localhost, istiod.istio-system.svc, …), so clients must verify
// a host name, not the IP.
func (i *Istiod) SecureGRPCAddr() string { return i.secureGRPCAddr }

// PlainGRPCAddr is host:port of the plaintext xDS listener (15010 in a cluster).
func (i *Istiod) PlainGRPCAddr() string { return i.grpcAddr }

// HTTPAddr is host:port of the HTTP listener with /ready and /debug (8080 in a cluster).
func (i *Istiod) HTTPAddr() string { return i.httpAddr }

// MonitoringAddr is host:port of the /metrics listener (15014 in a cluster).
func (i *Istiod) MonitoringAddr() string { return i.monitoringAddr }

// Dir is istiod's working directory.
func (i *Istiod) Dir() string { return i.dir }

// LogFile is where istiod's stdout and stderr go.
func (i *Istiod) LogFile() string { return i.proc.logFile() }

// Running reports whether the process is alive.
func (i *Istiod) Running() bool { return i.proc.running() }

// Stop kills istiod (the cluster keeps running). It is safe to call more than once.
func (i *Istiod) Stop() { i.proc.stop(5 * time.Second) }
