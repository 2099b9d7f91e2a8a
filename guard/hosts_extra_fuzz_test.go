package guard

import (
	"reflect"
	"strings"
	"testing"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzHostMatching checks the laws the reference engine relies on, for any two or three hosts:
// a host covers itself and "*" covers every host; intersection is symmetric; coverage is
// transitive; resolving a host twice changes nothing, and a short name becomes an in-cluster FQDN.
func FuzzHostMatching(f *testing.F) {
	for _, h := range [][3]string{
		{"*", "*.example.com", "a.example.com"},
		{"*.com", "*.example.com", "*.a.example.com"},
		{"reviews", "reviews.default", "reviews.default.svc.cluster.local"},
		{"", "*", "."},
		{"*.", "*..", "a."},
	} {
		f.Add(h[0], h[1], h[2], "default", "cluster.local")
	}
	f.Fuzz(func(t *testing.T, a, b, c, ns, domain string) {
		for _, h := range []string{a, b, c} {
			if !hostMatches(h, h) || !hostMatches("*", h) {
				t.Fatalf("host %q not covered by itself or by *", h)
			}
		}
		if hostsIntersect(a, b) != hostsIntersect(b, a) {
			t.Fatalf("hostsIntersect(%q, %q) is not symmetric", a, b)
		}
		if hostMatches(a, b) && hostMatches(b, c) && !hostMatches(a, c) {
			t.Fatalf("%q covers %q covers %q, but %q does not cover %q", a, b, c, a, c)
		}
		r := resolveHost(a, ns, domain)
		if again := resolveHost(r, ns, domain); again != r {
			t.Fatalf("resolveHost not idempotent: %q → %q → %q", a, r, again)
		}
		if a != "" && a != "*" && !strings.Contains(a, ".") && r != serviceFQDN(a, ns, domain) {
			t.Fatalf("short name %q resolved to %q", a, r)
		}
	})
}

// FuzzParseGatewayRef: every reference parses; "mesh" is the mesh and nothing else is; a parsed
// reference printed as ns/name parses back to itself; "./name" and "name" are in the
// VirtualService's namespace; "~" marks the internal form.
func FuzzParseGatewayRef(f *testing.F) {
	for _, ref := range []string{"mesh", "gw", "ns/gw", "./gw", "gw.ns.svc.cluster.local", "a/b/c", "/", "", ".", "~/x", "a.b"} {
		f.Add(ref, "default")
	}
	f.Fuzz(func(t *testing.T, ref, vsNS string) {
		r := parseGatewayRef(ref, vsNS)
		if r.mesh != (ref == "mesh") {
			t.Fatalf("%q: mesh = %v", ref, r.mesh)
		}
		if r.mesh {
			return
		}
		if r.internal != strings.Contains(ref, "~") {
			t.Fatalf("%q: internal = %v", ref, r.internal)
		}
		if !strings.ContainsAny(ref, "/.") && (r.namespace != vsNS || r.name != ref) {
			t.Fatalf("%q in %q parsed as %s", ref, vsNS, r)
		}
		if name, ok := strings.CutPrefix(ref, "./"); ok && (r.namespace != vsNS || r.name != name) {
			t.Fatalf("%q in %q parsed as %s", ref, vsNS, r)
		}
		if strings.Contains(r.namespace, "/") {
			return // a namespace never contains "/"; only a fuzzed vsNS can
		}
		back := parseGatewayRef(r.String(), vsNS)
		if back.namespace != r.namespace || back.name != r.name {
			t.Fatalf("%q parsed as %s, which parses back as %s", ref, r, back)
		}
	})
}

// FuzzCheckHostsAndGateways runs the whole engine on a snapshot whose hosts and gateway
// references come from the fuzzer: no panic, every finding names a code, an object and a field,
// and two runs on equal snapshots give the same findings.
func FuzzCheckHostsAndGateways(f *testing.F) {
	f.Add("*.example.com", "a.example.com", "web/store-gateway", "reviews", "v1", "reviews.web.svc.cluster.local")
	f.Add("./*", "*", "./store-gateway", "*.local", "", "reviews.web")
	f.Add("web/a.example.com", "a.example.com", "store-gateway.web.svc.cluster.local", "reviews", "v2", "*")
	f.Add("~/*", "", "mesh", "", "", "")
	f.Fuzz(func(t *testing.T, gwHost, vsHost, gwRef, dest, subset, drHost string) {
		snap := func() *Snapshot {
			gw := &networking.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "store-gateway"}}
			gw.Spec.Selector = map[string]string{"istio": "ingress"}
			gw.Spec.Servers = []*v1alpha3.Server{{Port: &v1alpha3.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{gwHost}}}
			vs := &networking.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "app"}}
			vs.Spec.Hosts = []string{vsHost}
			vs.Spec.Gateways = []string{gwRef, "mesh"}
			vs.Spec.Http = []*v1alpha3.HTTPRoute{{Route: []*v1alpha3.HTTPRouteDestination{{
				Destination: &v1alpha3.Destination{Host: dest, Subset: subset, Port: &v1alpha3.PortSelector{Number: 9080}},
			}}}}
			dr := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "reviews"}}
			dr.Spec.Host = drHost
			dr.Spec.Subsets = []*v1alpha3.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}}
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "reviews"},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"}, Ports: []corev1.ServicePort{{Port: 9080, Name: "http"}}}}
			ingress := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "ingress"},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"istio": "ingress"}, Ports: []corev1.ServicePort{{Port: 80}}}}
			return &Snapshot{
				Services: []*corev1.Service{svc, ingress}, Gateways: []*networking.Gateway{gw},
				VirtualServices: []*networking.VirtualService{vs}, DestinationRules: []*networking.DestinationRule{dr},
				Workloads: []Workload{
					{Kind: "Pod", Namespace: "web", Name: "reviews-1", Labels: map[string]string{"app": "reviews", "version": "v1"}},
					{Kind: "Pod", Namespace: "web", Name: "ingress-1", Labels: map[string]string{"istio": "ingress"}},
				},
			}
		}
		first := Check(snap(), DefaultOptions())
		for _, fd := range first {
			if fd.Code == "" || fd.Resource.Kind == "" || fd.Resource.Name == "" || fd.Field == "" || fd.Message == "" {
				t.Fatalf("incomplete finding %+v", fd)
			}
		}
		if second := Check(snap(), DefaultOptions()); !reflect.DeepEqual(first, second) {
			t.Fatalf("two runs differ:\n%v\n%v", first, second)
		}
	})
}
