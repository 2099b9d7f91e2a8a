package inject

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probedPod is a Deployment's pod with a named-port httpGet readiness probe, a tcpSocket liveness
// probe, an exec startup probe and Prometheus annotations.
func probedPod(annotations map[string]string) []byte {
	ann := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}
	for k, v := range annotations {
		ann[k] = v
	}
	pod := map[string]any{
		"metadata": map[string]any{
			"generateName": "web-7d9f8c6b5d-", "namespace": "shop",
			"labels":          map[string]string{"app": "web", "pod-template-hash": "7d9f8c6b5d"},
			"annotations":     ann,
			"ownerReferences": []map[string]any{{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5d", "controller": true, "uid": "u"}},
		},
		"spec": map[string]any{"containers": []map[string]any{{
			"name": "app", "image": "web:1",
			"ports":          []map[string]any{{"name": "http", "containerPort": 8080}},
			"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/ready", "port": "http", "scheme": "HTTPS"}, "periodSeconds": 2, "timeoutSeconds": 3},
			"livenessProbe":  map[string]any{"tcpSocket": map[string]any{"port": 8080}},
			"startupProbe":   map[string]any{"exec": map[string]any{"command": []string{"true"}}},
		}}},
	}
	b, _ := json.Marshal(pod)
	return b
}

func envOf(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestIstioProbesGoThroughTheAgent: httpGet and tcpSocket probes point at the agent, with the
// originals (named port resolved, HTTPS kept for the agent) in ISTIO_KUBE_APP_PROBERS; exec probes
// stay; node metadata names the Deployment.
func TestIstioProbesGoThroughTheAgent(t *testing.T) {
	pod, res := injectedPod(t, newInjector(t, nil), probedPod(nil))
	if !res.Injected {
		t.Fatalf("not injected: %v %v", res.Reason, res.Denied)
	}
	app, proxy := findContainer(pod, "app"), findContainer(pod, IstioProxyName)
	if g := app.ReadinessProbe.HTTPGet; g == nil || g.Path != "/app-health/app/readyz" || g.Port != intstr.FromInt32(AgentPort) || g.Scheme != corev1.URISchemeHTTP {
		t.Fatalf("readiness probe %+v, want HTTP GET /app-health/app/readyz on 15020", app.ReadinessProbe)
	}
	if app.ReadinessProbe.PeriodSeconds != 2 || app.ReadinessProbe.TimeoutSeconds != 3 {
		t.Errorf("the rewrite lost the probe's timing: %+v", app.ReadinessProbe)
	}
	if g := app.LivenessProbe.HTTPGet; g == nil || app.LivenessProbe.TCPSocket != nil || g.Path != "/app-health/app/livez" {
		t.Fatalf("liveness probe %+v, want an HTTP GET of /app-health/app/livez", app.LivenessProbe)
	}
	if app.StartupProbe.Exec == nil || app.StartupProbe.HTTPGet != nil {
		t.Fatalf("exec startup probe changed: %+v", app.StartupProbe)
	}
	var probers map[string]json.RawMessage
	if err := json.Unmarshal([]byte(envOf(proxy, "ISTIO_KUBE_APP_PROBERS")), &probers); err != nil {
		t.Fatalf("ISTIO_KUBE_APP_PROBERS: %v", err)
	}
	want := map[string]string{
		"/app-health/app/readyz": `{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTPS"},"timeoutSeconds":3}`,
		"/app-health/app/livez":  `{"tcpSocket":{"port":8080},"timeoutSeconds":1}`,
	}
	got := map[string]string{}
	for k, v := range probers {
		got[k] = string(v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prober table (-want +got):\n%s", diff)
	}
	for name, want := range map[string]string{
		"ISTIO_META_WORKLOAD_NAME": "web", "ISTIO_META_OWNER": "kubernetes://apis/apps/v1/namespaces/shop/deployments/web",
		"ISTIO_META_APP_CONTAINERS": "app", "ISTIO_META_POD_PORTS": `[{"name":"http","containerPort":8080}]`,
		"ISTIO_PROMETHEUS_ANNOTATIONS": `{"port":"9090","scrape":"true"}`,
	} {
		if got := envOf(proxy, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if pod.Annotations["prometheus.io/port"] != "15020" || pod.Annotations["prometheus.io/path"] != "/stats/prometheus" {
		t.Errorf("prometheus annotations %v, want the agent's merged endpoint", pod.Annotations)
	}
}

// TestIstioReinjectionRewritesFromOriginals: a pod injected by an older template (another revision)
// is injected again from the originals its status records: probes are rewritten once, the agent's
// table points at the app, never at itself; and a pod that then turns rewriting off gets its own
// probe back.
func TestIstioReinjectionRewritesFromOriginals(t *testing.T) {
	in := newInjector(t, nil)
	first, _ := injectedPod(t, in, probedPod(nil))
	st, _ := parseStatus(first.Annotations[AnnotationStatus])
	st.Revision = "older"
	older, _ := json.Marshal(st)
	first.Annotations[AnnotationStatus] = string(older)
	raw, _ := json.Marshal(first)

	second, res := injectedPod(t, in, raw)
	if len(res.Patch) == 0 {
		t.Fatal("a pod injected by another revision was not re-injected")
	}
	if diff := cmp.Diff(findContainer(first, "app"), findContainer(second, "app")); diff != "" {
		t.Errorf("re-injection changed the app container (-first +second):\n%s", diff)
	}
	if p := envOf(findContainer(second, IstioProxyName), "ISTIO_KUBE_APP_PROBERS"); strings.Contains(p, "15020") || !strings.Contains(p, "8080") {
		t.Errorf("after re-injection the agent probes %s, want the app's port 8080 and never itself", p)
	}
	if second.Annotations["prometheus.io/port"] != "15020" || envOf(findContainer(second, IstioProxyName), "ISTIO_PROMETHEUS_ANNOTATIONS") != `{"port":"9090","scrape":"true"}` {
		t.Errorf("re-injection lost the app's metrics port: %v", second.Annotations)
	}

	second.Annotations[AnnRewriteProbers] = "false"
	raw, _ = json.Marshal(second)
	third, _ := injectedPod(t, in, raw)
	app := findContainer(third, "app")
	if g := app.ReadinessProbe.HTTPGet; g == nil || g.Path != "/ready" || g.Port != intstr.FromString("http") || g.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("with rewriting off the readiness probe is %+v, want the user's original back", app.ReadinessProbe)
	}
	if app.LivenessProbe.TCPSocket == nil {
		t.Errorf("with rewriting off the liveness probe is %+v, want the user's tcpSocket back", app.LivenessProbe)
	}
	if p := envOf(findContainer(third, IstioProxyName), "ISTIO_KUBE_APP_PROBERS"); p != "" {
		t.Errorf("with rewriting off the agent still has probers %s", p)
	}
}

// TestIstioContainerCacheKeepsPodsApart: one injector, pods that differ only in one thing the
// cached container facts depend on; each gets its own facts, never the previous pod's.
func TestIstioContainerCacheKeepsPodsApart(t *testing.T) {
	in := newInjector(t, nil)
	variant := func(mutate func(c map[string]any)) []byte {
		var pod map[string]any
		_ = json.Unmarshal(probedPod(nil), &pod)
		c := pod["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
		mutate(c)
		b, _ := json.Marshal(pod)
		return b
	}
	cases := map[string]struct {
		raw     []byte
		env     string
		wantSub string
	}{
		"as is": {probedPod(nil), "ISTIO_KUBE_APP_PROBERS", `"port":8080`},
		"other probe port": {variant(func(c map[string]any) {
			c["livenessProbe"] = map[string]any{"tcpSocket": map[string]any{"port": 9999}}
		}), "ISTIO_KUBE_APP_PROBERS", `"port":9999`},
		"other port protocol": {variant(func(c map[string]any) {
			c["ports"] = []map[string]any{{"name": "http", "containerPort": 8080, "protocol": "SCTP"}}
		}), "ISTIO_META_POD_PORTS", `"protocol":"SCTP"`},
		"other container name": {variant(func(c map[string]any) { c["name"] = "web" }), "ISTIO_META_APP_CONTAINERS", "web"},
		"rewriting off":        {probedPod(map[string]string{AnnRewriteProbers: "false"}), "ISTIO_KUBE_APP_PROBERS", ""},
	}
	for _, name := range []string{"as is", "other probe port", "other port protocol", "other container name", "rewriting off", "as is"} {
		tc := cases[name]
		pod, _ := injectedPod(t, in, tc.raw)
		got := envOf(findContainer(pod, IstioProxyName), tc.env)
		if (tc.wantSub == "" && got != "") || !strings.Contains(got, tc.wantSub) {
			t.Errorf("%s: %s = %q, want it to contain %q", name, tc.env, got, tc.wantSub)
		}
	}
}
