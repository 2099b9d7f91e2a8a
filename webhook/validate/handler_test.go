package validate

import (
	"context"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/templates"
)

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := networking.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func namespace(name, mode string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if mode != "" {
		ns.Labels = map[string]string{ModeLabel: mode}
	}
	return ns
}

func gateway(ns, name string) *networking.Gateway {
	gw := &networking.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	gw.Spec.Servers = []*v1alpha3.Server{{Port: &v1alpha3.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}}}
	return gw
}

func service(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
}

func destinationRule(ns, name, host string) *networking.DestinationRule {
	dr := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	dr.Spec.Host = host
	return dr
}

// vsJSON is a VirtualService as kubectl sends it, in the given API version.
func vsJSON(version, ns, gw string) []byte {
	return []byte(`{"apiVersion":"networking.istio.io/` + version + `","kind":"VirtualService","metadata":{"name":"app","namespace":"` + ns + `"},` +
		`"spec":{"hosts":["*"],"gateways":["` + gw + `"]}}`)
}

func request(op admissionv1.Operation, group, version, kind, ns, name string, obj, old []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Kind: metav1.GroupVersionKind{Group: group, Version: version, Kind: kind}, Namespace: ns, Name: name, Operation: op,
		Object: runtime.RawExtension{Raw: obj}, OldObject: runtime.RawExtension{Raw: old},
	}}
}

type result struct {
	Allowed  bool
	Message  string
	Warnings []string
}

func TestHandle(t *testing.T) {
	base := []client.Object{namespace("warned", ""), namespace("strict", "deny"), namespace("quiet", "off"), gateway("store", "store-gateway")}
	tests := map[string]struct {
		cache, api []client.Object
		req        admission.Request
		want       result
	}{
		"warn mode admits with a warning": {
			req: request(admissionv1.Create, "networking.istio.io", "v1", "VirtualService", "warned", "app", vsJSON("v1", "warned", "store/store-gatewy"), nil),
			want: result{Allowed: true, Warnings: []string{
				`[MW0101] spec.gateways[0]: Gateway "store/store-gatewy" not found; did you mean "store-gateway"?`,
			}},
		},
		"deny mode denies with the field path": {
			req:  request(admissionv1.Create, "networking.istio.io", "v1beta1", "VirtualService", "strict", "app", vsJSON("v1beta1", "strict", "store/store-gatewy"), nil),
			want: result{Message: `meshwarden config guard: [MW0101] spec.gateways[0]: Gateway "store/store-gatewy" not found; did you mean "store-gateway"?`},
		},
		"dry run is denied the same": {
			req: func() admission.Request {
				r := request(admissionv1.Create, "networking.istio.io", "v1alpha3", "VirtualService", "strict", "app", vsJSON("v1alpha3", "strict", "nope"), nil)
				r.DryRun = ptr.To(true)
				return r
			}(),
			want: result{Message: `meshwarden config guard: [MW0101] spec.gateways[0]: Gateway "nope" not found`},
		},
		"deny mode: a miss in the cache found by the uncached read is admitted": {
			api:  []client.Object{gateway("strict", "fresh")},
			req:  request(admissionv1.Create, "networking.istio.io", "v1", "VirtualService", "strict", "app", vsJSON("v1", "strict", "fresh"), nil),
			want: result{Allowed: true},
		},
		"deny mode: an update that leaves a broken reference as it was is admitted with a warning": {
			req: request(admissionv1.Update, "networking.istio.io", "v1", "VirtualService", "strict", "app",
				vsJSON("v1", "strict", "nope"), vsJSON("v1", "strict", "nope")),
			want: result{Allowed: true, Warnings: []string{`[MW0101] spec.gateways[0]: Gateway "nope" not found`}},
		},
		"deny mode: an update that breaks a reference is denied": {
			req: request(admissionv1.Update, "networking.istio.io", "v1", "VirtualService", "strict", "app",
				vsJSON("v1", "strict", "nope"), vsJSON("v1", "strict", "store/store-gateway")),
			want: result{Message: `meshwarden config guard: [MW0101] spec.gateways[0]: Gateway "nope" not found`},
		},
		"off mode admits silently": {
			req:  request(admissionv1.Create, "networking.istio.io", "v1", "VirtualService", "quiet", "app", vsJSON("v1", "quiet", "nope"), nil),
			want: result{Allowed: true},
		},
		"deleting a referenced Gateway warns with its dependents": {
			cache: []client.Object{vsObject("web", "a", "store/store-gateway"), vsObject("store", "b", "store-gateway")},
			req:   request(admissionv1.Delete, "networking.istio.io", "v1", "Gateway", "store", "store-gateway", nil, nil),
			want:  result{Allowed: true, Warnings: []string{"Gateway store-gateway is still referenced by VirtualService b, VirtualService web/a"}},
		},
		"many dependents are counted, not listed past one line": {
			cache: func() []client.Object {
				var out []client.Object
				for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
					out = append(out, vsObject("web", "virtualservice-with-a-long-name-"+n, "store/store-gateway"))
				}
				return out
			}(),
			req: request(admissionv1.Delete, "networking.istio.io", "v1", "Gateway", "store", "store-gateway", nil, nil),
			want: result{Allowed: true, Warnings: []string{
				"Gateway store-gateway is still referenced by VirtualService web/virtualservice-with-a-long-name-a and 5 more",
			}},
		},
		"deleting a referenced Service warns with its dependents": {
			cache: []client.Object{service("warned", "reviews"), destinationRule("warned", "reviews", "reviews")},
			req:   request(admissionv1.Delete, "", "v1", "Service", "warned", "reviews", nil, nil),
			want:  result{Allowed: true, Warnings: []string{"Service reviews is still referenced by DestinationRule reviews"}},
		},
		"deleting an unreferenced Service": {
			cache: []client.Object{service("warned", "reviews")},
			req:   request(admissionv1.Delete, "", "v1", "Service", "warned", "reviews", nil, nil),
			want:  result{Allowed: true},
		},
		"ServiceEntry is admitted": {
			req:  request(admissionv1.Create, "networking.istio.io", "v1", "ServiceEntry", "strict", "se", []byte(`{"spec":{"hosts":["a.example.com"]}}`), nil),
			want: result{Allowed: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := scheme(t)
			cache := fake.NewClientBuilder().WithScheme(s).WithObjects(append(base, tc.cache...)...).Build()
			api := fake.NewClientBuilder().WithScheme(s).WithObjects(append(append(base, tc.cache...), tc.api...)...).Build()
			h := &Handler{Cache: cache, API: api, Options: guard.DefaultOptions(), DefaultMode: config.GuardWarn, Log: logr.Discard()}
			resp := h.Handle(context.Background(), tc.req)
			got := result{Allowed: resp.Allowed, Warnings: resp.Warnings}
			if resp.Result != nil && !resp.Allowed {
				got.Message = resp.Result.Message
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			for _, w := range resp.Warnings {
				if n := len([]rune(w)); n >= 120 {
					t.Errorf("warning of %d characters, want under 120: %q", n, w)
				}
			}
		})
	}
}

func vsObject(ns, name, gw string) *networking.VirtualService {
	vs := &networking.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	vs.Spec.Hosts = []string{"*"}
	vs.Spec.Gateways = []string{gw}
	return vs
}

// TestWorkloadAnnotations: a workload whose pod template carries an invalid meshwarden annotation
// is denied only where its pods would be injected and the guard denies; warned where it warns; and
// let through where its pods would not be injected at all.
func TestWorkloadAnnotations(t *testing.T) {
	deploy := func(ann, labels string) []byte {
		return []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"template":{"metadata":{"labels":{` + labels +
			`},"annotations":{` + ann + `}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}}}`)
	}
	const bad = `"sidecar.meshwarden.io/proxyCPU":"lots"`
	cron := []byte(`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"metadata":{"annotations":{` + bad + `}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}}}}}`)
	const want = `spec.template.metadata.annotations[sidecar.meshwarden.io/proxyCPU]`
	tests := map[string]struct {
		req         admission.Request
		wantAllowed bool
		wantIn      string // in the denial, or in a warning when allowed
	}{
		"valid":                 {req: request(admissionv1.Create, "apps", "v1", "Deployment", "strict", "d", deploy(`"sidecar.meshwarden.io/proxyCPU":"100m"`, ``), nil), wantAllowed: true},
		"no annotations":        {req: request(admissionv1.Update, "apps", "v1", "Deployment", "strict", "d", deploy(``, ``), nil), wantAllowed: true},
		"denied in deny mode":   {req: request(admissionv1.Create, "apps", "v1", "Deployment", "strict", "d", deploy(bad, ``), nil), wantIn: want},
		"invalid CronJob":       {req: request(admissionv1.Create, "batch", "v1", "CronJob", "strict", "c", cron, nil), wantIn: `spec.jobTemplate.spec.template.metadata.annotations[sidecar.meshwarden.io/proxyCPU]`},
		"warned in warn mode":   {req: request(admissionv1.Create, "apps", "v1", "Deployment", "warned", "d", deploy(bad, ``), nil), wantAllowed: true, wantIn: `pod template annotation sidecar.meshwarden.io/proxyCPU="lots": must be a positive quantity`},
		"pods opted out":        {req: request(admissionv1.Create, "apps", "v1", "Deployment", "strict", "d", deploy(bad, `"sidecar.meshwarden.io/inject":"false"`), nil), wantAllowed: true},
		"namespace not enabled": {req: request(admissionv1.Create, "apps", "v1", "Deployment", "plain", "d", deploy(bad, ``), nil), wantAllowed: true},
		"delete is not checked": {req: request(admissionv1.Delete, "apps", "v1", "Deployment", "strict", "d", nil, nil), wantAllowed: true},
	}
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	injector, err := inject.New(cfg, inject.StaticTemplates{Set: templates.Default()})
	if err != nil {
		t.Fatal(err)
	}
	enabled := func(ns *corev1.Namespace) *corev1.Namespace {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[inject.NamespaceLabel] = "enabled"
		return ns
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(enabled(namespace("strict", "deny")), enabled(namespace("warned", "warn")), namespace("plain", "deny")).Build()
			h := &Handler{Cache: c, API: c, Options: guard.DefaultOptions(), DefaultMode: config.GuardWarn, Injector: injector, Log: logr.Discard()}
			resp := h.Handle(context.Background(), tc.req)
			if resp.Allowed != tc.wantAllowed {
				t.Fatalf("allowed = %v, want %v (%v)", resp.Allowed, tc.wantAllowed, resp.Result)
			}
			got := resp.Result.Message
			if resp.Allowed {
				got = strings.Join(resp.Warnings, "\n")
			}
			if tc.wantIn != "" && !strings.Contains(got, tc.wantIn) {
				t.Errorf("answer %q does not name %q", got, tc.wantIn)
			}
			if tc.wantIn == "" && resp.Allowed && len(resp.Warnings) > 0 {
				t.Errorf("unexpected warnings %v", resp.Warnings)
			}
		})
	}
}

// FuzzHandle: any object bytes for any guarded kind get an answer, never a panic.
func FuzzHandle(f *testing.F) {
	f.Add("VirtualService", string(vsJSON("v1", "strict", "nope")))
	f.Add("Deployment", `{"spec":{"template":{"metadata":{"annotations":{"sidecar.meshwarden.io/proxyCPU":"x"}}}}}`)
	f.Add("DestinationRule", `{"spec":{"host":"*","subsets":[{"name":"a","labels":{"x":""}}]}}`)
	f.Add("Gateway", `{"spec":{"selector":{"a":"b"},"servers":[{"port":{"number":1},"hosts":["./x"]}]}}`)
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = networking.AddToScheme(s)
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(namespace("strict", "deny"), gateway("strict", "g")).Build()
	h := &Handler{Cache: c, API: c, Options: guard.DefaultOptions(), DefaultMode: config.GuardWarn, Log: logr.Discard()}
	f.Fuzz(func(t *testing.T, kind, obj string) {
		group := "networking.istio.io"
		if kind == "Deployment" || kind == "CronJob" {
			group = "apps"
		}
		for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
			_ = h.Handle(context.Background(), request(op, group, "v1", kind, "strict", "x", []byte(obj), []byte(obj)))
		}
	})
}
