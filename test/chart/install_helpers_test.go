package chart

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
	"strings"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/test/cluster"
)

func (e *installEnv) mustHelm(ctx context.Context, args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.helm, append(args, "--kubeconfig", e.c.Kubeconfig())...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(e.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(e.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(e.home, "data"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// checkAllExist asserts the API server holds every object of the manifest.
func (e *installEnv) checkAllExist(ctx context.Context, manifest string, want int) {
	e.t.Helper()
	out, _, err := e.c.KubectlInput(ctx, manifest, "get", "-f", "-", "-o", "name")
	if err != nil {
		e.t.Fatalf("objects of the release missing: %v", err)
	}
	if got := strings.Count(strings.TrimSpace(out), "\n") + 1; got != want {
		e.t.Errorf("%d of the release's %d objects exist:\n%s", got, want, out)
	}
}

// checkAllGone waits until no object of the manifest is left.
func (e *installEnv) checkAllGone(ctx context.Context, manifest string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _, err := e.c.KubectlInput(ctx, manifest, "get", "-f", "-", "--ignore-not-found", "-o", "name")
		if err == nil && strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("left after helm uninstall (err %v):\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
}

// waitRestored waits until no webhook of the release carries the garbage caBundle any more.
func (e *installEnv) waitRestored(ctx context.Context, garbage []byte) {
	e.t.Helper()
	api := e.client.AdmissionregistrationV1()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var bundles [][]byte
		mwc, merr := api.MutatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
		vwc, verr := api.ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
		restored := merr == nil && verr == nil
		if restored {
			for _, w := range mwc.Webhooks {
				bundles = append(bundles, w.ClientConfig.CABundle)
			}
			bundles = append(bundles, vwc.Webhooks[0].ClientConfig.CABundle)
		}
		for _, b := range bundles {
			restored = restored && len(b) > 0 && !bytes.Equal(b, garbage)
		}
		if restored {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal("meshwarden did not restore caBundle within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clobberCABundles overwrites caBundle in every webhook of the release with a CA nobody uses and
// returns it.
func (e *installEnv) clobberCABundles(ctx context.Context) []byte {
	e.t.Helper()
	ca, err := cluster.NewCA("not-meshwarden")
	if err != nil {
		e.t.Fatal(err)
	}
	api := e.client.AdmissionregistrationV1()
	mwc, err := api.MutatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig.CABundle = ca.CertPEM
	}
	if _, err := api.MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	vwc, err := api.ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	vwc.Webhooks[0].ClientConfig.CABundle = ca.CertPEM
	if _, err := api.ValidatingWebhookConfigurations().Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return ca.CertPEM
}

// checkCABundles asserts every webhook of the release has a caBundle.
func (e *installEnv) checkCABundles(ctx context.Context) {
	e.t.Helper()
	api := e.client.AdmissionregistrationV1()
	mwc, err := api.MutatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	vwc, err := api.ValidatingWebhookConfigurations().Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	configs := map[string]admissionv1.WebhookClientConfig{vwc.Webhooks[0].Name: vwc.Webhooks[0].ClientConfig}
	for _, w := range mwc.Webhooks {
		configs[w.Name] = w.ClientConfig
	}
	for name, cc := range configs {
		if len(cc.CABundle) == 0 {
			e.t.Errorf("webhook %s has no caBundle", name)
		}
	}
}

// checkGuard: the API server sends Istio config to the guard through the chart's validating webhook,
// and kubectl shows its finding as a warning (default mode warn).
func (e *installEnv) checkGuard(ctx context.Context) {
	e.t.Helper()
	const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: guard-demo, namespace: apps}
spec:
  hosts: [guard-demo]
  http: [{route: [{destination: {host: no-such-service}}]}]
`
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, stderr, err := e.c.KubectlInput(ctx, vs, "apply", "-f", "-")
		if err != nil {
			e.t.Fatalf("applying a VirtualService in warn mode: %v", err)
		}
		if strings.Contains(stderr, "Warning:") && strings.Contains(stderr, "no-such-service") {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no guard warning for a route to a missing host within 30s; kubectl stderr: %q", stderr)
		}
		_, _, _ = e.c.Kubectl(ctx, "delete", "virtualservice", "guard-demo", "-n", "apps", "--ignore-not-found")
		time.Sleep(500 * time.Millisecond)
	}
}

// runHelmTestScript runs the script of the chart's `helm test` Pod on this machine against the local
// meshwarden (kwok would only pretend to run the Pod), trusting the CA from meshwarden's Secret.
func (e *installEnv) runHelmTestScript(ctx context.Context, mw *localMeshwarden) {
	e.t.Helper()
	hooks := decodeAll(e.t, e.mustHelm(ctx, "get", "hooks", releaseName, "--namespace", releaseNS))
	pod := find[*corev1.Pod](e.t, hooks, releaseName+"-test-webhook")
	c := pod.Spec.Containers[0]
	sec, err := e.client.CoreV1().Secrets(releaseNS).Get(ctx, releaseName+"-webhook-tls", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	certs := filepath.Join(e.dir, "helm-test-certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, "ca.crt"), sec.Data["ca.crt"], 0o600); err != nil {
		e.t.Fatal(err)
	}
	script := strings.ReplaceAll(c.Args[0], "/certs/ca.crt", filepath.Join(certs, "ca.crt"))
	cmd := exec.CommandContext(ctx, c.Command[0], append(c.Command[1:], script)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("URL=https://127.0.0.1:%d/inject", e.webhook), "NAMESPACE="+releaseNS)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		e.t.Errorf("the helm test script failed against meshwarden (%v):\n%s\nmeshwarden log %s", err, out, mw.log)
	}
}

func testPod(labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "chart-", Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
	}
}

// proxyName is the name of the proxy container a profile injects.
func proxyName(p config.Profile) string {
	if p == config.ProfileEnvoy {
		return inject.ProxyName
	}
	return inject.IstioProxyName
}

// proxyContainer returns the pod's container (native sidecars included) named proxy, or nil.
func proxyContainer(p *corev1.Pod, proxy string) *corev1.Container {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == proxy {
				return &cs[i]
			}
		}
	}
	return nil
}

// hasProxy reports whether the pod got both the proxy container named proxy (the profile's, see
// proxyName) and meshwarden-init.
func hasProxy(p *corev1.Pod, proxy string) bool {
	return proxyContainer(p, proxy) != nil && proxyContainer(p, inject.InitName) != nil
}

// waitInjected creates pods in ns until one comes back injected (the API server picks up webhook
// configuration changes from an informer, and caBundle may be being restored), within 30s.
func (e *installEnv) waitInjected(ctx context.Context, ns string, labels map[string]string, mw *localMeshwarden) *corev1.Pod {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		p, err := e.client.CoreV1().Pods(ns).Create(ctx, testPod(labels), metav1.CreateOptions{})
		switch {
		case err != nil:
			last = err.Error()
		case hasProxy(p, e.proxy):
			return p
		default:
			last = "pod " + p.Name + " created without a sidecar"
			_ = e.client.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{})
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no injected pod in %s within 30s; last: %s; meshwarden log %s", ns, last, mw.log)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkPods: the chart's two injection webhooks select exactly the pods the shared names promise.
func (e *installEnv) checkPods(ctx context.Context) {
	e.t.Helper()
	cases := []struct {
		ns     string
		labels map[string]string
		want   bool
	}{
		{"apps", nil, true},
		{"apps", map[string]string{"sidecar.meshwarden.io/inject": "false"}, false},
		{"plain", map[string]string{"sidecar.meshwarden.io/inject": "true"}, true},
		{"plain", nil, false},
		{"out", map[string]string{"sidecar.meshwarden.io/inject": "true"}, true},
		{"out", nil, false},
		{"plain", map[string]string{"mesh": "always"}, true}, // injection.alwaysInjectSelector
		{"out", map[string]string{"mesh": "always"}, false},
		{releaseNS, map[string]string{"sidecar.meshwarden.io/inject": "true"}, false},
	}
	for _, c := range cases {
		p, err := e.client.CoreV1().Pods(c.ns).Create(ctx, testPod(c.labels), metav1.CreateOptions{})
		if err != nil {
			e.t.Errorf("namespace %s, labels %v: %v", c.ns, c.labels, err)
			continue
		}
		if got := hasProxy(p, e.proxy); got != c.want {
			e.t.Errorf("namespace %s, labels %v: injected %v (%s), want %v", c.ns, c.labels, got, e.proxy, c.want)
		}
	}
}

// installCertManagerCRDs applies the CRDs shipped in the cert-manager module meshwarden's go.mod requires.
func (e *installEnv) installCertManagerCRDs(ctx context.Context) {
	e.t.Helper()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = repoRoot(e.t)
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("locating the cert-manager module: %v", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")
	if _, _, err := e.c.Kubectl(ctx, "apply", "--server-side", "-f", crds); err != nil {
		e.t.Fatal(err)
	}
	if _, _, err := e.c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "-f", crds); err != nil {
		e.t.Fatal(err)
	}
}

// localMeshwarden is `meshwarden serve` run on this machine the way the chart's Deployment runs it.
type localMeshwarden struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (m *localMeshwarden) stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	select {
	case <-m.done:
		return
	default:
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
}

// startMeshwarden runs meshwarden with the release's config file and Deployment arguments (only the
// listen addresses and the config path changed for a local process), authenticated as the release's
// ServiceAccount, and waits until it is ready: certificate written and caBundle in place.
func (e *installEnv) startMeshwarden(ctx context.Context, objs []object) *localMeshwarden {
	t := e.t
	t.Helper()
	bin, err := cluster.BuildMeshwarden(ctx, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	cm := find[*corev1.ConfigMap](t, objs, releaseName+"-config")
	cfgFile := filepath.Join(e.dir, "meshwarden-config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	d := find[*appsv1.Deployment](t, objs, releaseName)
	pod := d.Spec.Template.Spec
	kubeconfig := e.serviceAccountKubeconfig(ctx, pod.ServiceAccountName)
	ports := [2]int{}
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			t.Fatal(err)
		}
	}
	var args []string
	for _, a := range pod.Containers[0].Args {
		switch name, _, _ := strings.Cut(a, "="); name {
		case "--config", "--webhook-port", "--metrics-addr", "--health-addr":
		default:
			args = append(args, a)
		}
	}
	if tcm := all[*corev1.ConfigMap](objs); len(tcm) > 1 {
		// The templates ConfigMap, written out the way the kubelet mounts it at injection.templatesDir.
		tdir := filepath.Join(e.dir, "templates")
		if err := os.MkdirAll(tdir, 0o700); err != nil {
			t.Fatal(err)
		}
		for k, v := range find[*corev1.ConfigMap](t, objs, releaseName+"-templates").Data {
			if err := os.WriteFile(filepath.Join(tdir, k), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		args = append(args, "--templates-dir="+tdir)
	}
	args = append(args, "--config="+cfgFile, "--kubeconfig="+kubeconfig, "--webhook-host=127.0.0.1",
		"--webhook-port="+strconv.Itoa(e.webhook), "--metrics-addr=127.0.0.1:"+strconv.Itoa(ports[0]),
		"--health-addr=127.0.0.1:"+strconv.Itoa(ports[1]))
	logFile := filepath.Join(e.dir, "meshwarden-chart.log")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+releaseNS, "POD_NAME=meshwarden-local")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &localMeshwarden{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(m.done) }()
	t.Cleanup(m.stop)

	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-m.done:
			t.Fatalf("meshwarden exited (args %q); log %s:\n%s", args, logFile, tailFile(logFile))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshwarden not ready within 90s; log %s:\n%s", logFile, tailFile(logFile))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// serviceAccountKubeconfig writes a kubeconfig with a token of the release's ServiceAccount.
func (e *installEnv) serviceAccountKubeconfig(ctx context.Context, sa string) string {
	e.t.Helper()
	tr, err := e.client.CoreV1().ServiceAccounts(releaseNS).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("token for ServiceAccount %s: %v", sa, err)
	}
	rc := e.c.RESTConfig()
	ca := rc.CAData
	if len(ca) == 0 && rc.CAFile != "" {
		if ca, err = os.ReadFile(rc.CAFile); err != nil {
			e.t.Fatal(err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa", Namespace: releaseNS}
	cfg.CurrentContext = "sa"
	path := filepath.Join(e.dir, "meshwarden-sa.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		e.t.Fatal(err)
	}
	return path
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
