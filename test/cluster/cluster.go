package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configures Start. The zero value is usable.
type Options struct {
	// Dir is the run directory for state, logs, certificates and pidfiles. If it exists it is
	// wiped first (after killing processes a crashed earlier run left behind). Empty means a fresh
	// temporary directory that Stop removes.
	Dir string
	// BinDir holds the tools; default: $MESHWARDEN_BIN, else <repo>/bin.
	BinDir string
	// Nodes is the number of kwok fake nodes; default 1.
	Nodes int
	// Logf reports progress; default: silent.
	Logf func(format string, args ...any)
}

// Cluster is a running control plane. Its methods are safe to call from one goroutine at a time.
type Cluster struct {
	dir, binDir string
	removeDir   bool
	logf        func(string, ...any)

	ca         *CA
	admin      KeyPair
	apiPort    int
	kubeconfig string
	rest       *rest.Config
	client     *kubernetes.Clientset

	procs     []*process // in start order; Stop walks it backwards
	apiserver *process
	realNodes []*RealNode
	// egress carries the API server's traffic to kubelets and pods (egress.go).
	egress       *clusterEgress
	egressConfig string
}

// Tools lists the binaries Start needs in BinDir.
var Tools = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}

// MissingTools returns the tools absent from binDir, so callers can skip or fail with a clear hint.
func MissingTools(binDir string) []string {
	var missing []string
	for _, t := range append(Tools, "kwok-stages.yaml") {
		if _, err := os.Stat(filepath.Join(binDir, t)); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// Start brings up etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with
// opts.Nodes ready fake nodes, and returns once the default ServiceAccount exists (the proof that
// the controller manager works). On error everything already started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	c := &Cluster{dir: opts.Dir, binDir: opts.BinDir, logf: opts.Logf}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	if c.binDir == "" {
		if c.binDir, err = BinDir(); err != nil {
			return nil, err
		}
	}
	if missing := MissingTools(c.binDir); len(missing) > 0 {
		return nil, fmt.Errorf("tools missing from %s: %v; run `make tools` first", c.binDir, missing)
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	nodes := max(opts.Nodes, 1)

	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[3], ports[4], ports[5]
	c.apiPort = ports[2]

	if err := c.writePKI(); err != nil {
		return nil, err
	}
	if c.egressConfig, err = c.startEgress(); err != nil {
		return nil, err
	}
	c.logf("starting etcd on 127.0.0.1:%d", etcdClient)
	etcd, err := c.run("etcd", etcdArgs(c.dir, etcdClient, etcdPeer)...)
	if err != nil {
		return nil, err
	}
	c.logf("starting kube-apiserver on https://127.0.0.1:%d", c.apiPort)
	if c.apiserver, err = c.run("kube-apiserver", c.apiserverArgs(etcdClient)...); err != nil {
		return nil, err
	}
	if err := c.waitAPIServer(ctx, 90*time.Second); err != nil {
		if !etcd.running() {
			return nil, etcd.exitError()
		}
		return nil, err
	}
	kc := c.kubeconfig
	if _, err := c.run("kube-controller-manager", kcmArgs(c.dir, kc, kcmPort)...); err != nil {
		return nil, err
	}
	if _, err := c.run("kube-scheduler", "--kubeconfig="+kc, "--authentication-kubeconfig="+kc,
		"--authorization-kubeconfig="+kc, "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false"); err != nil {
		return nil, err
	}
	kwok, err := c.run("kwok", "--kubeconfig="+kc, "--config="+filepath.Join(c.binDir, "kwok-stages.yaml"),
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake", "--node-ip=127.0.0.1",
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort))
	if err != nil {
		return nil, err
	}
	c.logf("creating %d kwok node(s) and waiting for controllers", nodes)
	if err := c.createNodes(ctx, nodes, kwok); err != nil {
		return nil, err
	}
	if err := c.waitServiceAccount(ctx, "default", time.Minute); err != nil {
		return nil, fmt.Errorf("kube-controller-manager did not create the default ServiceAccount: %w", err)
	}
	return c, nil
}

// prepareDir makes the run directory fresh. It refuses when another live program owns it, so two
// `make run`s never tear down each other's cluster.
func (c *Cluster) prepareDir() error {
	if c.dir == "" {
		d, err := os.MkdirTemp("", "meshwarden-cluster-")
		if err != nil {
			return err
		}
		c.dir, c.removeDir = d, true
	} else {
		abs, err := filepath.Abs(c.dir)
		if err != nil {
			return err
		}
		c.dir = abs
		if owner := ownerPID(c.dir); owner > 0 && owner != os.Getpid() && syscall.Kill(owner, 0) == nil {
			return fmt.Errorf("run directory %s is in use by process %d; stop it first (kill %d)", c.dir, owner, owner)
		}
		killStale(c.dir, c.binDir)
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("clean run directory: %w", err)
		}
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

func ownerPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(b))
	return pid
}

// SweepStale kills what crashed runs left in the run directories matching pattern (a filepath.Glob
// pattern such as "_run/e2e-*") whose owner process is gone, and removes those directories.
func SweepStale(pattern, binDir string) {
	dirs, _ := filepath.Glob(pattern)
	for _, d := range dirs {
		if owner := ownerPID(d); owner > 0 && syscall.Kill(owner, 0) == nil {
			continue
		}
		// A directory another run created a moment ago may not have its owner.pid yet.
		if fi, err := os.Stat(d); err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		killStale(d, binDir)
		_ = os.RemoveAll(d)
	}
}

func (c *Cluster) writePKI() (err error) {
	if c.ca, err = NewCA("meshwarden-dev-cluster-ca"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "ca.crt"), c.ca.CertPEM, 0o600); err != nil {
		return err
	}
	serving, err := c.ca.Serving("kube-apiserver", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	if err != nil {
		return err
	}
	if _, _, err := serving.Write(c.dir, "apiserver"); err != nil {
		return err
	}
	if _, _, err := writeServiceAccountKey(c.dir); err != nil {
		return err
	}
	// One system:masters identity drives every component: this cluster exists for tests, and RBAC
	// stays switched on for everything else that talks to it.
	if c.admin, err = c.ca.Client("meshwarden-admin", "system:masters"); err != nil {
		return err
	}
	// The API server's identity towards kubelets (logs, exec): a real node authenticates it by the
	// cluster CA and asks the API server whether it may act, so anonymous access stays off.
	kc, err := c.ca.Client(apiserverKubeletClient)
	if err != nil {
		return err
	}
	if _, _, err := kc.Write(c.dir, "apiserver-kubelet-client"); err != nil {
		return err
	}
	c.rest = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(c.apiPort),
		TLSClientConfig: rest.TLSClientConfig{CAData: c.ca.CertPEM, CertData: c.admin.CertPEM, KeyData: c.admin.KeyPEM},
		QPS:             100,
		Burst:           200,
	}
	if c.client, err = kubernetes.NewForConfig(c.rest); err != nil {
		return err
	}
	c.kubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	return clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"meshwarden-dev": {Server: c.rest.Host, CertificateAuthorityData: c.ca.CertPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"admin": {ClientCertificateData: c.admin.CertPEM, ClientKeyData: c.admin.KeyPEM}},
		Contexts:       map[string]*clientcmdapi.Context{"meshwarden-dev": {Cluster: "meshwarden-dev", AuthInfo: "admin"}},
		CurrentContext: "meshwarden-dev",
	}, c.kubeconfig)
}

func (c *Cluster) run(name string, args ...string) (*process, error) {
	p := &process{name: name, path: filepath.Join(c.binDir, name), args: args, dir: c.dir}
	if err := p.start(); err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// Stop kills every process Start launched, newest first, and removes a temporary run directory.
// It is safe to call more than once.
func (c *Cluster) Stop() {
	// Real nodes first: their kubelets must not outlive the API server they report to by long.
	for _, n := range c.realNodes {
		n.Stop()
	}
	c.realNodes = nil
	c.egress.close()
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(3 * time.Second)
	}
	c.procs = nil
	_ = os.Remove(filepath.Join(c.dir, "owner.pid"))
	if c.removeDir {
		_ = os.RemoveAll(c.dir)
	}
}

// Dir is the run directory (logs are <component>.log in it).
func (c *Cluster) Dir() string { return c.dir }

// BinDir is where the tools were found.
func (c *Cluster) BinDir() string { return c.binDir }

// Kubeconfig is the absolute path of an admin (system:masters) kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// RESTConfig returns a copy of the admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.rest) }

// Client is an admin clientset.
func (c *Cluster) Client() *kubernetes.Clientset { return c.client }

// CA is the cluster CA, for issuing more client or serving certificates.
func (c *Cluster) CA() *CA { return c.ca }

// RestartAPIServer stops kube-apiserver and starts it again on the same port with the same
// flags, returning once it is ready. Other components reconnect on their own.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	if c.apiserver == nil {
		return errors.New("cluster is not running")
	}
	start := time.Now()
	c.apiserver.stop(3 * time.Second) // it drains for longer than that; etcd keeps the state either way
	c.logf("kube-apiserver stopped in %s; starting it again", time.Since(start).Round(100*time.Millisecond))
	if err := c.apiserver.start(); err != nil {
		return err
	}
	return c.waitAPIServer(ctx, 90*time.Second)
}

func (c *Cluster) waitAPIServer(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, c.apiserver, func(ctx context.Context) error {
		_, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
}
