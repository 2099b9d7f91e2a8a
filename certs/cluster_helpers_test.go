package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
	regv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/meshwarden/meshwarden/certs/internal/testapi"
	"github.com/meshwarden/meshwarden/config"
)

// The integration tests run a real kube-apiserver and etcd (controller-runtime's envtest with the
// binaries `make tools` builds into bin/). The API server itself calls the test webhook, so "the
// caBundle trusts the served certificate" is checked the way it matters.

func TestMain(m *testing.M) {
	code := m.Run()
	testapi.Stop()
	os.Exit(code)
}

// fixtureEnv is one test's isolated corner of the API server: its own namespace (for the Secret and
// Lease), a label that selects its webhook configurations, and a webhook server the API server calls.
type fixtureEnv struct {
	t      *testing.T
	rc     *rest.Config
	client kubernetes.Interface
	name   string // namespace, label value and configuration name
	url    string
	calls  atomic.Int64
	logs   *logBuffer

	mu       sync.Mutex
	backends []*Provider // replicas behind the test "Service", in start order
	next     int
}

func newFixture(t *testing.T, name string) *fixtureEnv {
	rc := testapi.Config(t)
	f := &fixtureEnv{t: t, rc: rc, client: kubernetes.NewForConfigOrDie(rc), name: name, logs: &logBuffer{}}
	// Registered first, so it runs last: after the managers have stopped logging.
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("logs:\n" + f.logs.String())
		}
	})
	ctx := context.Background()
	if _, err := f.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.serve()
	return f
}

// config is a self-mode config for this fixture; 127.0.0.1 is a SAN because the API server calls
// the webhook by URL on the loopback address.
func (f *fixtureEnv) config(mut func(*config.Certs)) *config.Config {
	c := &config.Config{Namespace: f.name}
	c.Certs.WebhookSelector = "certs-test=" + f.name
	c.Certs.ExtraSANs = []string{"127.0.0.1"}
	if mut != nil {
		mut(&c.Certs)
	}
	c.Default()
	if err := c.Validate(); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// serve starts an HTTPS admission webhook that allows everything and counts calls, so tests can
// prove the API server really called it. Like a Service, it spreads handshakes over the ready
// replicas (falling back to the first one while none is ready).
func (f *fixtureEnv) serve() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	tc := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		f.mu.Lock()
		var ready []*Provider
		for _, p := range f.backends {
			if p.Ready(nil) == nil {
				ready = append(ready, p)
			}
		}
		if len(ready) == 0 {
			ready = f.backends
		}
		if len(ready) == 0 {
			f.mu.Unlock()
			return nil, fmt.Errorf("no replica")
		}
		p := ready[f.next%len(ready)]
		f.next++
		f.mu.Unlock()
		return p.GetCertificate(h)
	}}
	srv := &http.Server{Handler: http.HandlerFunc(f.allow), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(tls.NewListener(ln, tc)) }()
	f.t.Cleanup(func() { _ = srv.Close() })
	f.url = "https://" + ln.Addr().String()
}

func (f *fixtureEnv) setBackend(p *Provider, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.backends {
		if b == p {
			f.backends = append(f.backends[:i], f.backends[i+1:]...)
			break
		}
	}
	if on {
		f.backends = append(f.backends, p)
	}
}

func (f *fixtureEnv) allow(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	var rev admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&rev); err != nil || rev.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	rev.Response = &admissionv1.AdmissionResponse{UID: rev.Request.UID, Allowed: true}
	rev.Request = nil
	_ = json.NewEncoder(w).Encode(&rev)
}

// registerWebhooks creates a mutating and a validating configuration, failurePolicy Fail, for
// ConfigMap creation in the fixture's namespace, with the given caBundle.
func (f *fixtureEnv) registerWebhooks(caBundle []byte) {
	ctx := context.Background()
	meta := metav1.ObjectMeta{Name: f.name, Labels: map[string]string{"certs-test": f.name}}
	rules := []regv1.RuleWithOperations{{Operations: []regv1.OperationType{regv1.Create},
		Rule: regv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}}
	nsSel := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.name}}
	cc := regv1.WebhookClientConfig{URL: ptr.To(f.url + "/"), CABundle: caBundle}
	_, err := f.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &regv1.MutatingWebhookConfiguration{
		ObjectMeta: meta,
		Webhooks: []regv1.MutatingWebhook{{Name: "m.certs.test", ClientConfig: cc, Rules: rules, NamespaceSelector: nsSel,
			FailurePolicy: ptr.To(regv1.Fail), SideEffects: ptr.To(regv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: ptr.To[int32](5)}},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	_, err = f.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &regv1.ValidatingWebhookConfiguration{
		ObjectMeta: meta,
		Webhooks: []regv1.ValidatingWebhook{{Name: "v.certs.test", ClientConfig: cc, Rules: rules, NamespaceSelector: nsSel,
			FailurePolicy: ptr.To(regv1.Fail), SideEffects: ptr.To(regv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: ptr.To[int32](5)}},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		ctx := context.Background()
		_ = f.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, f.name, metav1.DeleteOptions{})
		_ = f.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, f.name, metav1.DeleteOptions{})
	})
}

// caBundles returns the caBundle of both configurations.
func (f *fixtureEnv) caBundles(ctx context.Context) ([][]byte, error) {
	m, err := f.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, f.name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	v, err := f.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, f.name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return [][]byte{m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle}, nil
}

// clobber overwrites the mutating configuration's caBundle, as a re-applied manifest would.
func (f *fixtureEnv) clobber(ctx context.Context, bundle []byte) {
	f.t.Helper()
	m, err := f.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, f.name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	m.Webhooks[0].ClientConfig.CABundle = bundle
	if _, err := f.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// createConfigMap goes through both webhooks; it fails if the API server cannot call them.
func (f *fixtureEnv) createConfigMap(ctx context.Context) error {
	_, err := f.client.CoreV1().ConfigMaps(f.name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"}}, metav1.CreateOptions{})
	return err
}

// secret returns the fixture's Secret data, nil when absent.
func (f *fixtureEnv) secret(ctx context.Context, name string) (map[string][]byte, error) {
	s, err := f.client.CoreV1().Secrets(f.name).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

// replica is one meshwarden replica in the test process: a manager with the certificate provider.
type replica struct {
	p      *Provider
	mgr    manager.Manager
	cancel context.CancelFunc
	done   chan struct{}
}

// startReplica starts a manager with p's runnables; with lease set, leader election uses that Lease
// in the fixture's namespace and short durations, and is not released on stop, as after a crash.
func (f *fixtureEnv) startReplica(cfg *config.Config, id string, lease bool) *replica {
	f.t.Helper()
	p, err := New(cfg, f.logs.logger(f.t, id))
	if err != nil {
		f.t.Fatal(err)
	}
	opts := manager.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 f.logs.logger(f.t, id+"/manager"),
	}
	if lease {
		opts.LeaderElection = true
		opts.LeaderElectionID = "certs-test"
		opts.LeaderElectionNamespace = f.name
		opts.LeaderElectionResourceLock = "leases"
		opts.LeaseDuration = ptr.To(4 * time.Second)
		opts.RenewDeadline = ptr.To(3 * time.Second)
		opts.RetryPeriod = ptr.To(500 * time.Millisecond)
	}
	rc := rest.CopyConfig(f.rc)
	rc.UserAgent = "certs-test/" + id
	mgr, err := manager.New(rc, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := p.AddToManager(mgr); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{p: p, mgr: mgr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := mgr.Start(ctx); err != nil && ctx.Err() == nil {
			f.logs.logger(f.t, id).Error(err, "manager stopped")
		}
	}()
	f.setBackend(p, true)
	f.t.Cleanup(func() { f.stop(r) })
	return r
}

// stop takes r out of the Service and stops it.
func (f *fixtureEnv) stop(r *replica) {
	f.setBackend(r.p, false)
	r.stop()
}

// stop cancels the replica and waits for it to end (bounded).
func (r *replica) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
	}
}

// leads reports whether r holds the lease.
func (r *replica) leads() bool {
	select {
	case <-r.mgr.Elected():
		return true
	default:
		return false
	}
}

// eventually polls check every 100ms until it passes or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) time.Duration {
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

// logBuffer collects log lines for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) logger(t *testing.T, prefix string) logr.Logger {
	return funcr.New(func(p, args string) {
		b.mu.Lock()
		fmt.Fprintln(&b.buf, time.Now().Format("15:04:05.000"), prefix, p, args)
		b.mu.Unlock()
	}, funcr.Options{})
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) contains(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), s)
}

func testLogger() logr.Logger { return logr.Discard() }

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }
