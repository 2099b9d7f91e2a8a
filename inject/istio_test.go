package inject

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshwarden/meshwarden/config"
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

// TestIstioContainerCacheIgnoresForgedStatus: a pod carrying a status record (forged here) is
// computed on its own, and does not poison what the next plain pod with the same containers gets;
// a container name made to look like another pod's ports does not share its cache entry either.
func TestIstioContainerCacheIgnoresForgedStatus(t *testing.T) {
	in := newInjector(t, nil)
	forged := probedPod(map[string]string{AnnotationStatus: `{"containers":["app"],"templates":["istio"],"revision":""}`})
	_, _ = in.Inject(Request{Pod: forged, Namespace: enabledNS})
	pod, _ := injectedPod(t, in, probedPod(nil))
	if got := envOf(findContainer(pod, IstioProxyName), "ISTIO_META_APP_CONTAINERS"); got != "app" {
		t.Errorf("after a forged status, a plain pod's app containers are %q, want app", got)
	}
	if findContainer(pod, "app").ReadinessProbe.HTTPGet.Port.IntValue() != AgentPort {
		t.Error("after a forged status, a plain pod's probes were not rewritten")
	}

	// Name "x", port 80/TCP, probe P against name "x\x01:80/TCP", no ports, probe P: the old key's
	// separators made these equal.
	mk := func(name string, ports []map[string]any) []byte {
		c := map[string]any{"name": name, "image": "a:1", "readinessProbe": map[string]any{"tcpSocket": map[string]any{"port": 80}}}
		if ports != nil {
			c["ports"] = ports
		}
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"name": "p"}, "spec": map[string]any{"containers": []any{c}}})
		return b
	}
	_, _ = in.Inject(Request{Pod: mk("x\x01:80/TCP", nil), Namespace: enabledNS})
	res, err := in.Inject(Request{Pod: mk("x", []map[string]any{{"containerPort": 80, "protocol": "TCP"}}), Namespace: enabledNS})
	if err != nil || len(res.Denied) > 0 {
		t.Fatalf("the real pod: %v %v", err, res.Denied)
	}
	if _, err := ApplyPatch(mk("x", []map[string]any{{"containerPort": 80, "protocol": "TCP"}}), res.Patch); err != nil {
		t.Fatalf("the real pod's patch does not apply after a crafted pod: %v", err)
	}
}

// TestAgentPortListNamesEveryAgentPort keeps the message's list and the set it describes together.
func TestAgentPortListNamesEveryAgentPort(t *testing.T) {
	ports := make([]int, 0, len(agentPorts))
	for p := range agentPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	var want []string
	for _, p := range ports {
		want = append(want, strconv.Itoa(p))
	}
	if got := strings.Join(want, ", "); got != agentPortList {
		t.Fatalf("agentPortList = %q, want %q", agentPortList, got)
	}
}

// TestIstioProxyConfigHoldAndMetadata: ProxyConfig's holdApplicationUntilProxyStarts decides the hold
// as it does in istiod (unless meshwarden's own annotation says the same thing), and proxyMetadata
// merges key by key with the config's and reaches the proxy as environment variables.
func TestIstioProxyConfigHoldAndMetadata(t *testing.T) {
	classic := map[string]string{AnnNativeSidecar: "false"}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range classic {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	base := func(c *config.Config) {
		c.Injection.Istio.ProxyConfig = map[string]any{"proxyMetadata": map[string]any{"MESH_WIDE": "1", "SHARED": "mesh"}}
	}
	cases := map[string]struct {
		ann    map[string]string
		cfg    func(*config.Config)
		hold   bool
		env    map[string]string
		denied string
	}{
		"annotation hold": {ann: with(map[string]string{AnnProxyConfig: "holdApplicationUntilProxyStarts: true"}), hold: true},
		"config hold": {ann: classic, cfg: func(c *config.Config) {
			c.Injection.Istio.ProxyConfig = map[string]any{"holdApplicationUntilProxyStarts": true}
		}, hold: true},
		"annotation beats config": {ann: with(map[string]string{AnnProxyConfig: "holdApplicationUntilProxyStarts: false"}), cfg: func(c *config.Config) { c.Injection.HoldApp = true }, hold: false},
		"both agree":              {ann: with(map[string]string{AnnProxyConfig: "holdApplicationUntilProxyStarts: true", AnnHoldApplication: "true"}), hold: true},
		"both disagree": {ann: with(map[string]string{AnnProxyConfig: "holdApplicationUntilProxyStarts: true", AnnHoldApplication: "false"}),
			denied: "metadata.annotations[" + AnnHoldApplication + "]: Invalid value: \"false\": contradicts holdApplicationUntilProxyStarts: true"},
		"metadata merged": {ann: with(map[string]string{AnnProxyConfig: "proxyMetadata: {SHARED: pod, ISTIO_META_DNS_CAPTURE: \"true\"}"}), cfg: base,
			env: map[string]string{"MESH_WIDE": "1", "SHARED": "pod", "ISTIO_META_DNS_CAPTURE": "true"}},
		"metadata name": {ann: with(map[string]string{AnnProxyConfig: "proxyMetadata: {\"A=B\": x}"}),
			denied: "metadata.annotations[" + AnnProxyConfig + "].proxyMetadata[A=B]: Invalid value: \"A=B\""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := newInjector(t, tc.cfg)
			res, err := in.Inject(Request{Pod: probedPod(tc.ann), Namespace: enabledNS})
			if err != nil {
				t.Fatal(err)
			}
			if tc.denied != "" {
				if !strings.Contains(res.Denied.ToAggregate().Error(), tc.denied) {
					t.Fatalf("denial %v, want it to contain %q", res.Denied, tc.denied)
				}
				return
			}
			pod, res := injectedPod(t, in, probedPod(tc.ann))
			if !res.Injected {
				t.Fatalf("not injected: %v %v", res.Reason, res.Denied)
			}
			proxy := findContainer(pod, IstioProxyName)
			held := proxy.Lifecycle != nil && proxy.Lifecycle.PostStart != nil
			if held != tc.hold {
				t.Fatalf("hold = %v, want %v (lifecycle %+v)", held, tc.hold, proxy.Lifecycle)
			}
			if held && pod.Spec.Containers[0].Name != IstioProxyName {
				t.Fatalf("a held proxy must start first; containers %v", pod.Spec.Containers)
			}
			for k, want := range tc.env {
				if got := envOf(proxy, k); got != want {
					t.Errorf("env %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestIstioLifecycleHooksGoThroughTheAgent: httpGet and tcpSocket lifecycle hooks are called over
// the pod's IP like probes, so they go through the agent at /app-lifecycle/..., with no timeout of
// the agent's own (a draining preStop may take long); exec hooks stay; rewriting off restores them.
func TestIstioLifecycleHooksGoThroughTheAgent(t *testing.T) {
	raw := func(ann map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"name": "hooks", "namespace": "shop", "annotations": ann},
			"spec": map[string]any{"containers": []map[string]any{
				{"name": "app", "image": "app:1", "ports": []map[string]any{{"name": "admin", "containerPort": 9000}},
					"lifecycle": map[string]any{
						"preStop":   map[string]any{"httpGet": map[string]any{"path": "/drain", "port": "admin"}},
						"postStart": map[string]any{"tcpSocket": map[string]any{"port": 9000}},
					}},
				{"name": "worker", "image": "w:1",
					"lifecycle": map[string]any{"preStop": map[string]any{"exec": map[string]any{"command": []string{"sleep", "5"}}}}},
			}},
		})
		return b
	}
	in := newInjector(t, nil)
	pod, res := injectedPod(t, in, raw(nil))
	if !res.Injected {
		t.Fatalf("not injected: %v %v", res.Reason, res.Denied)
	}
	app, worker, proxy := findContainer(pod, "app"), findContainer(pod, "worker"), findContainer(pod, IstioProxyName)
	for name, h := range map[string]*corev1.LifecycleHandler{"prestopz": app.Lifecycle.PreStop, "poststartz": app.Lifecycle.PostStart} {
		if h.HTTPGet == nil || h.TCPSocket != nil || h.HTTPGet.Path != "/app-lifecycle/app/"+name || h.HTTPGet.Port != intstr.FromInt32(AgentPort) {
			t.Errorf("%s hook %+v, want an HTTP GET of /app-lifecycle/app/%s on the agent", name, h, name)
		}
	}
	if worker.Lifecycle.PreStop.Exec == nil || worker.Lifecycle.PreStop.HTTPGet != nil {
		t.Errorf("exec hook changed: %+v", worker.Lifecycle.PreStop)
	}
	var probers map[string]json.RawMessage
	if err := json.Unmarshal([]byte(envOf(proxy, "ISTIO_KUBE_APP_PROBERS")), &probers); err != nil {
		t.Fatalf("ISTIO_KUBE_APP_PROBERS: %v", err)
	}
	want := map[string]string{
		"/app-lifecycle/app/prestopz":   `{"httpGet":{"path":"/drain","port":9000}}`,
		"/app-lifecycle/app/poststartz": `{"tcpSocket":{"port":9000}}`,
	}
	got := map[string]string{}
	for k, v := range probers {
		got[k] = string(v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prober table (-want +got):\n%s", diff)
	}

	// Injected again with rewriting off: the user's hooks come back from the status record.
	out, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var again map[string]any
	_ = json.Unmarshal(out, &again)
	again["metadata"].(map[string]any)["annotations"].(map[string]any)[AnnIstioRewriteProbers] = "false"
	out, _ = json.Marshal(again)
	pod2, res := injectedPod(t, in, out)
	if res.Reason != "" && !res.Injected {
		t.Fatalf("second pass: %v %v", res.Reason, res.Denied)
	}
	app2 := findContainer(pod2, "app")
	if h := app2.Lifecycle.PreStop.HTTPGet; h == nil || h.Path != "/drain" || h.Port != intstr.FromString("admin") {
		t.Errorf("preStop after rewriting off = %+v, want the user's /drain on admin", app2.Lifecycle.PreStop)
	}
	if h := app2.Lifecycle.PostStart; h.TCPSocket == nil || h.HTTPGet != nil {
		t.Errorf("postStart after rewriting off = %+v, want the user's tcpSocket", h)
	}
}
