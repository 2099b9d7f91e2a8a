package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/test/cluster"
)

// installEnv is a control plane with the chart's helm and a private helm home.
type installEnv struct {
	t       *testing.T
	c       *cluster.Cluster
	helm    string
	home    string
	chart   string
	dir     string
	client  *kubernetes.Clientset
	webhook int // port of the out-of-cluster meshwarden the webhooks call
	// proxy is the name of the proxy container the installed release's profile injects.
	proxy string
}

// TestInstall installs the chart into a real control plane (test/cluster: kube-apiserver, etcd,
// controller-manager, scheduler, kwok) with helm, then:
//   - every object of the release is accepted and exists;
//   - meshwarden, run locally with the chart's config file, the chart's Deployment flags and the
//     chart's ServiceAccount token (so with exactly the chart's RBAC), writes its certificate Secret,
//     fills caBundle in the chart's webhook configurations (reached via webhook.url) and injects pods
//     selected by the chart's selectors, and only those;
//   - `helm upgrade`, plain and --force (which replaces the webhook configurations and so wipes
//     caBundle), keeps injection working: meshwarden restores caBundle;
//   - `helm uninstall` removes every object, webhook configurations included;
//   - cert-manager mode installs against cert-manager's CRDs, and the "everything" values install too.
//
// Pods run on kwok's fake node, so no container actually starts: `helm test` is not run here.
func TestInstall(t *testing.T) {
	helm := helmBinary(t)
	if testing.Short() {
		t.Skip("install test: starts a control plane (-short given)")
	}
	binDir, err := cluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if missing := cluster.MissingTools(binDir); len(missing) > 0 {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatalf("control-plane tools missing from %s: %v; `make test` builds them with `make tools`", binDir, missing)
		}
		t.Skipf("control-plane tools missing from %s: %v; run `make tools`", binDir, missing)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()

	runParent := filepath.Join(repoRoot(t), "_run")
	// Other engineers' runs may share the checkout: own directory, sweep only dead owners' ones.
	cluster.SweepStale(filepath.Join(runParent, "chart-*"), binDir)
	if err := os.MkdirAll(runParent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(runParent, "chart-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, BinDir: binDir, Logf: t.Logf})
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	})
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	e := &installEnv{t: t, c: c, helm: helm, home: t.TempDir(), chart: chartDir(t), dir: dir, client: c.Client(), webhook: port}
	if err := c.InstallIstioCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	e.installCertManagerCRDs(ctx)

	e.selfMode(ctx)
	e.certManagerMode(ctx)
	e.everything(ctx)
}

// selfMode is the default install, end to end with a running meshwarden.
func (e *installEnv) selfMode(ctx context.Context) {
	t := e.t
	base := fmt.Sprintf("https://127.0.0.1:%d", e.webhook)
	notes := e.mustHelm(ctx, "install", releaseName, e.chart, "--namespace", releaseNS, "--create-namespace",
		"--values", filepath.Join("testdata", "values", "custom-templates.yaml"),
		"--set", "webhook.url="+base, "--set", "certs.extraSANs={127.0.0.1}",
		"--set", "injection.alwaysInjectSelector[0].matchLabels.mesh=always", "--wait", "--timeout", "3m")
	if !strings.Contains(notes, "kubectl label namespace NAME meshwarden.io/inject=enabled") {
		t.Errorf("helm install printed no NOTES on labelling a namespace:\n%s", notes)
	}
	manifest := e.mustHelm(ctx, "get", "manifest", releaseName, "--namespace", releaseNS)
	objs := decodeAll(t, manifest)
	e.checkAllExist(ctx, manifest, len(objs))

	// The default profile, istio: pods get an istio-proxy with the chart's Istio proxy image.
	cfg := loadConfig(t, objs)
	if cfg.Injection.Profile != config.ProfileIstio {
		t.Errorf("default install runs the %q profile, want istio", cfg.Injection.Profile)
	}
	e.proxy = proxyName(cfg.Injection.Profile)

	mw := e.startMeshwarden(ctx, objs)
	defer mw.stop()
	if _, err := e.client.CoreV1().Secrets(releaseNS).Get(ctx, releaseName+"-webhook-tls", metav1.GetOptions{}); err != nil {
		t.Errorf("meshwarden did not write its certificate Secret with the chart's RBAC: %v", err)
	}
	e.checkCABundles(ctx)

	for ns, labels := range map[string]map[string]string{
		"apps": {"meshwarden.io/inject": "enabled"}, "out": {"meshwarden.io/inject": "disabled"}, "plain": nil,
	} {
		if err := e.c.CreateNamespace(ctx, ns, labels); err != nil {
			t.Fatal(err)
		}
	}
	p := e.waitInjected(ctx, "apps", nil, mw)
	if c := proxyContainer(p, e.proxy); c.Image != cfg.Injection.Istio.ProxyImage { // waitInjected saw it
		t.Errorf("injected %s runs %s, want the chart's injection.istio.proxyImage %s", e.proxy, c.Image, cfg.Injection.Istio.ProxyImage)
	}
	// The chart's templates ConfigMap, as mounted, is what meshwarden's template loader reads.
	if got := p.Annotations["audit.example.com/injected"]; got != "yes: really" {
		t.Errorf("custom template not applied: annotation audit.example.com/injected = %q", got)
	}
	e.checkPods(ctx)
	e.checkGuard(ctx)
	e.runHelmTestScript(ctx, mw)

	// A plain upgrade: helm's three-way merge leaves the caBundle meshwarden set alone.
	e.mustHelm(ctx, "upgrade", releaseName, e.chart, "--namespace", releaseNS, "--reuse-values",
		"--set", "webhook.timeoutSeconds=9", "--wait", "--timeout", "3m")
	mwc, err := e.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *mwc.Webhooks[0].TimeoutSeconds != 9 {
		t.Errorf("upgrade not applied: timeoutSeconds %d", *mwc.Webhooks[0].TimeoutSeconds)
	}
	e.waitInjected(ctx, "apps", nil, mw)

	// --force: helm replaces what changed (the Deployment rolls); injection keeps working.
	e.mustHelm(ctx, "upgrade", releaseName, e.chart, "--namespace", releaseNS, "--reuse-values", "--force",
		"--set", "podAnnotations.example\\.com/upgraded=yes", "--wait", "--timeout", "3m")
	e.waitInjected(ctx, "apps", nil, mw)
	e.checkCABundles(ctx)

	// Something else clobbers caBundle (a re-applied manifest of an older chart, GitOps, a manual
	// edit): meshwarden restores it and injection recovers by itself.
	garbage := e.clobberCABundles(ctx)
	start := time.Now()
	e.waitRestored(ctx, garbage)
	t.Logf("caBundle restored %s after it was clobbered", time.Since(start).Round(10*time.Millisecond))
	e.waitInjected(ctx, "apps", nil, mw)

	// Everything meshwarden did until now, it did as the chart's ServiceAccount: a refusal is an RBAC
	// gap. (After the uninstall below its permissions are gone, so later refusals are expected.)
	if log, err := os.ReadFile(mw.log); err == nil {
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "forbidden") {
				t.Errorf("meshwarden was refused with the chart's RBAC: %.600s", line)
			}
		}
	}

	e.mustHelm(ctx, "uninstall", releaseName, "--namespace", releaseNS, "--wait", "--timeout", "3m")
	e.checkAllGone(ctx, manifest)
	for _, get := range []func() error{
		func() error {
			_, err := e.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := e.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); !apierrors.IsNotFound(err) {
			t.Errorf("webhook configuration left after uninstall (err %v)", err)
		}
	}
	mw.stop()
	// The self-mode Secret is meshwarden's, not the release's: helm leaves it, so remove it here.
	_ = e.client.CoreV1().Secrets(releaseNS).Delete(ctx, releaseName+"-webhook-tls", metav1.DeleteOptions{})
}

// certManagerMode: the Issuers and Certificates pass cert-manager's CRD schemas. No cert-manager
// controller runs, so nothing is issued; the objects and the CA-injection annotation are checked.
func (e *installEnv) certManagerMode(ctx context.Context) {
	t := e.t
	notes := e.mustHelm(ctx, "install", releaseName, e.chart, "--namespace", releaseNS, "--set", "certs.mode=cert-manager",
		"--set", "replicaCount=1")
	if !strings.Contains(notes, "WARNING: one replica with failurePolicy Fail") {
		t.Errorf("NOTES do not warn about one replica with failurePolicy Fail:\n%s", notes)
	}
	manifest := e.mustHelm(ctx, "get", "manifest", releaseName, "--namespace", releaseNS)
	objs := decodeAll(t, manifest)
	e.checkAllExist(ctx, manifest, len(objs))
	out, _, err := e.c.Kubectl(ctx, "get", "certificates.cert-manager.io,issuers.cert-manager.io", "-n", releaseNS, "-o", "name")
	if err != nil || strings.Count(out, "\n") != 4 {
		t.Errorf("want 2 Certificates and 2 Issuers in the API server, got %q (%v)", out, err)
	}
	vwc, err := e.client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil || vwc.Annotations["cert-manager.io/inject-ca-from"] != releaseNS+"/"+releaseName+"-webhook" {
		t.Errorf("ValidatingWebhookConfiguration lacks the inject-ca-from annotation (%v)", err)
	}
	e.mustHelm(ctx, "uninstall", releaseName, "--namespace", releaseNS, "--wait", "--timeout", "3m")
	e.checkAllGone(ctx, manifest)
}

// everything: every optional object but the ServiceMonitor (no prometheus-operator CRD here) is
// accepted by the API server.
func (e *installEnv) everything(ctx context.Context) {
	t := e.t
	e.mustHelm(ctx, "install", releaseName, e.chart, "--namespace", releaseNS,
		"--values", filepath.Join("testdata", "values", "everything.yaml"), "--set", "serviceMonitor.enabled=false")
	manifest := e.mustHelm(ctx, "get", "manifest", releaseName, "--namespace", releaseNS)
	e.checkAllExist(ctx, manifest, len(decodeAll(t, manifest)))
	e.mustHelm(ctx, "uninstall", releaseName, "--namespace", releaseNS, "--wait", "--timeout", "3m")
	e.checkAllGone(ctx, manifest)
}
