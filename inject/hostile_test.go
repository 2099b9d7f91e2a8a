package inject

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshwarden/meshwarden/templates"
)

// hostileValues try to turn a value into YAML structure or template code.
var hostileValues = []string{
	"100m\nsecurityContext: {privileged: true}",
	"x\"\n  privileged: true\n",
	"{{ .Values.ProxyUID }}",
	"'; runAsUser: 0; '",
	"]\n  capabilities: {add: [SYS_ADMIN]}",
	"10.0.0.0/8\n- --mode=NONE",
	"*\",\"--mode=NONE",
	strings.Repeat("A", 10000),
}

// securityOf collects every security-relevant field meshwarden's containers end up with.
func securityOf(pod *corev1.Pod) map[string]any {
	out := map[string]any{"podSecurityContext": pod.Spec.SecurityContext}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		out[c.Name] = map[string]any{"sc": c.SecurityContext, "command": c.Command, "image": c.Image}
	}
	return out
}

// TestHostileAnnotationValuesCannotChangeSecurity sets every meshwarden annotation to hostile values:
// each pod is either denied or injected with exactly the securityContexts, commands and images of a
// plain injection (the image only through proxyImage, the documented knob).
func TestHostileAnnotationValuesCannotChangeSecurity(t *testing.T) {
	in := newInjector(t, nil)
	plain, _ := injectedPod(t, in, podJSON(nil, nil))
	want := securityOf(plain)
	for _, key := range knownKeys() {
		if key == AnnotationStatus {
			continue
		}
		for i, v := range hostileValues {
			raw := podJSON(nil, map[string]string{key: v})
			res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Denied) > 0 || !res.Injected {
				continue
			}
			pod, _ := injectedPod(t, in, raw)
			if diff := cmp.Diff(want, securityOf(pod)); diff != "" {
				t.Errorf("%s = hostile value %d changed security (-plain +got):\n%s", key, i, diff)
			}
		}
	}
}

// TestTemplateQuotesValues bypasses validation and renders the default template with hostile values
// directly: toJson in the template keeps each one a single scalar, so no field can appear.
func TestTemplateQuotesValues(t *testing.T) {
	cfg := newInjector(t, envoyProfile).cfg
	base := settingsFor(cfg.Injection, Overrides{})
	plain, err := render(templates.Default(), []string{"sidecar"}, base.values(cfg.Injection), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range hostileValues {
		s := base
		s.proxyImage, s.initImage, s.proxyCPU, s.logLevel, s.inclOutCIDRs, s.exclInPorts = v, v, v, v, v, v
		r, err := render(templates.Default(), []string{"sidecar"}, s.values(cfg.Injection), nil)
		if err != nil {
			continue // refusing to render is safe too
		}
		if len(r.initContainers) != len(plain.initContainers) || len(r.containers) != len(plain.containers) || len(r.volumes) != len(plain.volumes) {
			t.Fatalf("hostile value %d changed the pod's shape", i)
		}
		for j := range r.initContainers {
			got, want := securityContextOf(t, r.initContainers[j].raw), securityContextOf(t, plain.initContainers[j].raw)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("hostile value %d changed %s's securityContext:\n%s", i, r.initContainers[j].name, diff)
			}
		}
	}
}

func securityContextOf(t *testing.T, raw []byte) *corev1.SecurityContext {
	var c corev1.Container
	if err := strictJSON(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.SecurityContext
}

// TestIstioTemplateQuotesPodFacts renders the istio template with hostile values in every fact that
// comes from the pod (names, labels, ports, probes, annotations) and in the config's strings: each
// value lands verbatim in its one env var or label, and the proxy's env names, securityContext and
// volumes stay those of a plain rendering.
func TestIstioTemplateQuotesPodFacts(t *testing.T) {
	cfg := newInjector(t, nil).cfg
	base := settingsFor(cfg.Injection, Overrides{})
	// Every fact set, so that every optional env var is there to compare with.
	x := "x"
	base.facts = podFacts{discovery: x, proxyConfig: x, appContainers: x, podPorts: x, workloadName: x, owner: x,
		canonicalName: x, canonicalRevision: x, probers: x, prometheus: x}
	cfg.Injection.Istio.Network = x
	plain, err := render(templates.Default(), []string{"istio"}, base.values(cfg.Injection), nil)
	if err != nil {
		t.Fatal(err)
	}
	plainProxy := renderedProxy(t, plain)
	renders := 0
	for i, v := range hostileValues {
		s := base
		s.facts = podFacts{discovery: v, proxyConfig: v, appContainers: v, podPorts: v, workloadName: v, owner: v,
			canonicalName: v, canonicalRevision: v, probers: v, prometheus: v}
		c := cfg.Injection
		c.Istio.ClusterID, c.Istio.MeshID, c.Istio.TrustDomain, c.Istio.Network = v, v, v, v
		r, err := render(templates.Default(), []string{"istio"}, s.values(c), nil)
		if err != nil {
			continue // refusing to render is safe too
		}
		renders++
		proxy := renderedProxy(t, r)
		if diff := cmp.Diff(envNames(plainProxy), envNames(proxy)); diff != "" {
			t.Errorf("hostile value %d changed the proxy's env names (-plain +got):\n%s", i, diff)
		}
		for _, name := range []string{"CA_ADDR", "PROXY_CONFIG", "ISTIO_META_APP_CONTAINERS", "ISTIO_META_POD_PORTS", "ISTIO_META_WORKLOAD_NAME",
			"ISTIO_META_OWNER", "ISTIO_KUBE_APP_PROBERS", "ISTIO_PROMETHEUS_ANNOTATIONS", "ISTIO_META_CLUSTER_ID", "ISTIO_META_MESH_ID", "TRUST_DOMAIN"} {
			if got := envOf(proxy, name); got != v {
				t.Errorf("hostile value %d: %s = %q, want the value verbatim", i, name, got)
			}
		}
		if r.labels[LabelCanonicalName] != v || r.labels[LabelCanonicalRevision] != v || len(r.labels) != len(plain.labels) {
			t.Errorf("hostile value %d: labels %v", i, r.labels)
		}
		if diff := cmp.Diff(plainProxy.SecurityContext, proxy.SecurityContext); diff != "" {
			t.Errorf("hostile value %d changed the proxy's securityContext:\n%s", i, diff)
		}
		if len(r.volumes) != len(plain.volumes) || len(proxy.VolumeMounts) != len(plainProxy.VolumeMounts) {
			t.Errorf("hostile value %d changed the volumes", i)
		}
	}
	// Every one is a string toJson can quote, so refusing any would be a bug in the template.
	if renders != len(hostileValues) {
		t.Errorf("%d of %d hostile values rendered", renders, len(hostileValues))
	}
}

func renderedProxy(t *testing.T, r *rendered) *corev1.Container {
	t.Helper()
	for _, p := range append(append([]piece{}, r.initContainers...), r.containers...) {
		if p.name == IstioProxyName {
			var c corev1.Container
			if err := strictJSON(p.raw, &c); err != nil {
				t.Fatal(err)
			}
			return &c
		}
	}
	t.Fatal("no istio-proxy rendered")
	return nil
}

func envNames(c *corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	return out
}
