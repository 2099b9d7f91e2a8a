package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/templates"
)

func newScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := networking.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func svc(ns, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
}

func dr(ns, name, host string) *networking.DestinationRule {
	d := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	d.Spec.Host = host
	return d
}

func vs(ns, name, gw, host string) *networking.VirtualService {
	v := &networking.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	v.Spec.Gateways = []string{gw}
	v.Spec.Hosts = []string{"*"}
	return v
}

func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestBrokenAndResolved follows a DestinationRule through its Service's deletion and re-creation.
func TestBrokenAndResolved(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(svc("shop", "reviews"), dr("shop", "reviews", "reviews")).Build()
	rec := events.NewFakeRecorder(10)
	m := NewMetrics(nil)
	o := guard.DefaultOptions()
	o.MissingDestinationRuleHost = config.SeverityError
	r := &Reconciler{Client: c, Recorder: rec, Options: o, Metrics: m, Log: logr.Discard()}
	key := Key{guard.KindDestinationRule, "shop", "reviews"}
	step := func(name string, want []string, wantGauge float64) {
		t.Helper()
		r.Invalidate(nil)
		if _, err := r.Reconcile(ctx, key); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, drain(rec)); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", name, diff)
		}
		if got := value(t, m.Findings.WithLabelValues(string(guard.CodeDestinationRuleHostNotFound), "error")); got != wantGauge {
			t.Errorf("%s: findings gauge = %v, want %v", name, got, wantGauge)
		}
	}
	step("healthy", nil, 0)
	if err := c.Delete(ctx, svc("shop", "reviews")); err != nil {
		t.Fatal(err)
	}
	step("service deleted", []string{`Warning BrokenReference [MW0201] spec.host: host "reviews" matches no Service or ServiceEntry`}, 1)
	step("still broken: no repeat", nil, 1)
	if err := c.Create(ctx, svc("shop", "reviews")); err != nil {
		t.Fatal(err)
	}
	step("service re-created", []string{"Normal ReferencesResolved every reference of this DestinationRule resolves"}, 0)
	if err := c.Delete(ctx, dr("shop", "reviews", "reviews")); err != nil {
		t.Fatal(err)
	}
	step("object gone", nil, 0)
}

func TestDependents(t *testing.T) {
	o := guard.DefaultOptions()
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).
		WithObjects(vs("web", "a", "store/gw", ""), vs("store", "b", "gw", ""), vs("store", "c", "other", ""), dr("web", "r", "reviews.shop.svc.cluster.local"), dr("shop", "r2", "reviews")).
		WithIndex(&networking.VirtualService{}, IndexGateway, func(o client.Object) []string { return guard.GatewayRefs(o.(*networking.VirtualService)) }).
		WithIndex(&networking.VirtualService{}, IndexHost, func(ob client.Object) []string { return guard.DestinationHosts(ob.(*networking.VirtualService), o) }).
		WithIndex(&networking.DestinationRule{}, IndexHost, func(ob client.Object) []string {
			return []string{guard.DestinationRuleHost(ob.(*networking.DestinationRule), o)}
		}).Build()
	r := &Reconciler{Client: c, Options: o, Log: logr.Discard()}
	gw := &networking.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "store", Name: "gw"}}
	want := []Key{{guard.KindGateway, "store", "gw"}, {guard.KindVirtualService, "store", "b"}, {guard.KindVirtualService, "web", "a"}}
	if diff := cmp.Diff(want, r.gateway(context.Background(), gw)); diff != "" {
		t.Errorf("Gateway dependents (-want +got):\n%s", diff)
	}
	want = []Key{{guard.KindDestinationRule, "shop", "r2"}, {guard.KindDestinationRule, "web", "r"}}
	if diff := cmp.Diff(want, r.hostDependents(context.Background(), "reviews.shop.svc.cluster.local")); diff != "" {
		t.Errorf("host dependents (-want +got):\n%s", diff)
	}
}

// TestSidecarMissing: the check asks the injector's own decision, through the stripped cache, so
// only a pod the webhook would have injected is reported: not pods in kube-system or meshwarden's
// namespace, never-selected or opted-out pods, another mesh's pods or Windows pods.
func TestSidecarMissing(t *testing.T) {
	ctx := context.Background()
	ns := func(name, label string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{NamespaceInjectLabel: label}}}
	}
	pod := func(ns, name string, edit func(*corev1.Pod), containers ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "u1", Controller: ptr.To(true)}}}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
		}
		if edit != nil {
			edit(p)
		}
		// What the manager's cache would hold.
		stripped, _ := stripPod(p)
		return stripped.(*corev1.Pod)
	}
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Injection.NeverInjectSelector = []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "batch"}}}
	injector, err := inject.New(cfg, inject.StaticTemplates{Set: templates.Default()})
	if err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{ns("mesh", "enabled"), ns("plain", ""), ns("kube-system", "enabled"), ns(cfg.Namespace, "enabled"),
		pod("mesh", "bare", nil, "app"),
		pod("mesh", "injected", nil, "app", "istio-proxy"),
		pod("plain", "bare", nil, "app"),
		pod("kube-system", "dns", nil, "app"),
		pod(cfg.Namespace, "meshwarden", nil, "app"),
		pod("mesh", "batch", func(p *corev1.Pod) { p.Labels = map[string]string{"tier": "batch"} }, "app"),
		pod("mesh", "out-label", func(p *corev1.Pod) { p.Labels = map[string]string{PodInjectLabel: "false"} }, "app"),
		pod("mesh", "out-annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{PodInjectLabel: "false"} }, "app"),
		pod("mesh", "linkerd", func(p *corev1.Pod) { p.Annotations = map[string]string{"linkerd.io/proxy-version": "x"} }, "app", "linkerd-proxy"),
		pod("mesh", "windows", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }, "app"),
	}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(objs...).Build()
	rec := events.NewFakeRecorder(20)
	m := NewMetrics(nil)
	r := &SidecarReconciler{Client: c, Recorder: rec, Decide: InjectorDecision(injector), ProxyName: "istio-proxy", Metrics: m, Log: logr.Discard()}
	for _, o := range objs {
		if _, ok := o.(*corev1.Pod); !ok {
			continue
		}
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"Warning SidecarMissing pod bare runs without the istio-proxy sidecar although namespace mesh has meshwarden.io/inject=enabled; delete the pod to have it injected"}
	if diff := cmp.Diff(want, drain(rec)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := value(t, m.PodsWithoutSidecar); got != 1 {
		t.Errorf("gauge = %v, want 1", got)
	}
	if err := c.Delete(ctx, pod("mesh", "bare", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "mesh", Name: "bare"}}); err != nil {
		t.Fatal(err)
	}
	if got := value(t, m.PodsWithoutSidecar); got != 0 {
		t.Errorf("gauge after delete = %v, want 0", got)
	}
}

func TestStripPod(t *testing.T) {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "a"}, Annotations: map[string]string{"big": "x", StatusAnnotation: "{}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "app", Image: "img", Env: []corev1.EnvVar{{Name: "SECRET", Value: "s"}}}}},
	}
	got, err := stripPod(p)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "a"}, Annotations: map[string]string{StatusAnnotation: "{}"}},
		Spec:       corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "app"}}, InitContainers: []corev1.Container{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stripped pod (-want +got):\n%s", diff)
	}
}

func value(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// TestDebounce: a burst of events about one target queues its dependent once, after the delay.
func TestDebounce(t *testing.T) {
	o := guard.DefaultOptions()
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(vs("store", "b", "gw", "")).
		WithIndex(&networking.VirtualService{}, IndexGateway, func(o client.Object) []string { return guard.GatewayRefs(o.(*networking.VirtualService)) }).Build()
	r := &Reconciler{Client: c, Options: o, Debounce: 50 * time.Millisecond, Log: logr.Discard()}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[Key]())
	defer q.ShutDown()
	h := enqueue(r, r.gateway, nil)
	gw := &networking.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "store", Name: "gw"}}
	for range 5 {
		h.Update(context.Background(), event.TypedUpdateEvent[*networking.Gateway]{ObjectOld: gw, ObjectNew: gw}, q)
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("queue has %d items before the debounce delay, want 0", n)
	}
	time.Sleep(200 * time.Millisecond)
	if n := q.Len(); n != 2 {
		t.Fatalf("queue has %d items after the delay, want 2 (the Gateway and its VirtualService)", n)
	}
	if !r.dirty {
		t.Error("the snapshot was not marked stale")
	}
}

// TestServiceGateways: a Service event queues only the Gateways whose pods the Service selects.
func TestServiceGateways(t *testing.T) {
	pod := func(ns, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	}
	gw := func(ns, name string, sel map[string]string) *networking.Gateway {
		g := &networking.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		g.Spec.Selector = sel
		return g
	}
	ingress := map[string]string{"istio": "ingressgateway"}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(
		pod("istio-system", "ingress-1", map[string]string{"istio": "ingressgateway", "app": "ingress"}),
		pod("shop", "reviews-1", map[string]string{"app": "reviews"}),
		gw("shop", "public", ingress), gw("web", "public", ingress),
		gw("shop", "eastwest", map[string]string{"istio": "eastwestgateway"}),
		gw("shop", "zonal", map[string]string{"topology.kubernetes.io/zone": "a"}),
	).Build()
	r := &Reconciler{Client: c, Options: guard.DefaultOptions(), Log: logr.Discard()}
	service := func(ns string, sel map[string]string) *corev1.Service {
		s := svc(ns, "s")
		s.Spec.Selector = sel
		return s
	}
	for name, tc := range map[string]struct {
		svc  *corev1.Service
		want []Key
	}{
		"selects the ingress pods": {service("istio-system", map[string]string{"app": "ingress"}),
			[]Key{{guard.KindGateway, "shop", "public"}, {guard.KindGateway, "shop", "zonal"}, {guard.KindGateway, "web", "public"}}},
		"same labels, other namespace": {service("shop", map[string]string{"app": "ingress"}), nil},
		"application pods":             {service("shop", map[string]string{"app": "reviews"}), []Key{{guard.KindGateway, "shop", "zonal"}}},
		"no selector":                  {service("istio-system", nil), nil},
	} {
		if diff := cmp.Diff(tc.want, r.gatewaysOfService(context.Background(), tc.svc)); diff != "" {
			t.Errorf("%s: Gateways (-want +got):\n%s", name, diff)
		}
	}
}
