package guard

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1alpha3 "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// liveGen makes small random objects over few namespaces, names and labels, so that events replace,
// delete and collide with each other often.
type liveGen struct{ r *rand.Rand }

func (g liveGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g liveGen) ns() string               { return g.pick("a", "b", "istio-system") }
func (g liveGen) name() string             { return g.pick("x", "y", "z", "xy") }

func (g liveGen) labels() map[string]string {
	m := map[string]string{}
	if g.r.IntN(4) > 0 {
		m["app"] = g.pick("x", "y", "ingress")
	}
	if g.r.IntN(2) == 0 {
		m["v"] = g.pick("1", "2")
	}
	if g.r.IntN(8) == 0 {
		m["topology.kubernetes.io/zone"] = g.pick("z1", "z2")
	}
	return m
}

func (g liveGen) host() string {
	return g.pick("x", "y", "z.a.svc.cluster.local", "x.b.svc.cluster.local", "ext.example.com", "*.example.com", "*", "nope")
}

func (g liveGen) object() (key string, obj any) {
	m := metav1.ObjectMeta{Namespace: g.ns(), Name: g.name()}
	switch g.r.IntN(8) {
	case 0, 1:
		s := &corev1.Service{ObjectMeta: m}
		if g.r.IntN(4) > 0 {
			s.Spec.Selector = g.labels()
		}
		for range g.r.IntN(3) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: []int32{80, 443, 8080}[g.r.IntN(3)], TargetPort: intstr.FromInt32(int32(8000 + g.r.IntN(3)))})
		}
		if g.r.IntN(5) == 0 {
			s.Annotations = map[string]string{AnnotationExportTo: g.pick(".", "*", "a,b")}
		}
		return KindService + "/" + m.Namespace + "/" + m.Name, s
	case 2:
		se := &networking.ServiceEntry{ObjectMeta: m}
		for range 1 + g.r.IntN(3) {
			se.Spec.Hosts = append(se.Spec.Hosts, g.host())
		}
		if g.r.IntN(4) == 0 {
			se.Spec.ExportTo = []string{g.pick(".", "*", "a")}
		}
		return KindServiceEntry + "/" + m.Namespace + "/" + m.Name, se
	case 3:
		gw := &networking.Gateway{ObjectMeta: m}
		gw.Spec.Selector = g.labels()
		gw.Spec.Servers = []*v1alpha3.Server{{Port: &v1alpha3.Port{Number: []uint32{80, 8000, 8001}[g.r.IntN(3)]}, Hosts: []string{g.pick("*", "ext.example.com", "a/*")}}}
		return KindGateway + "/" + m.Namespace + "/" + m.Name, gw
	case 4:
		vs := &networking.VirtualService{ObjectMeta: m}
		vs.Spec.Hosts = []string{g.host()}
		vs.Spec.Gateways = []string{g.pick("mesh", "x", "a/y", "istio-system/z")}
		d := &v1alpha3.Destination{Host: g.host()}
		if g.r.IntN(2) == 0 {
			d.Subset = g.pick("v1", "v2")
		}
		vs.Spec.Http = []*v1alpha3.HTTPRoute{{Route: []*v1alpha3.HTTPRouteDestination{{Destination: d}}}}
		return KindVirtualService + "/" + m.Namespace + "/" + m.Name, vs
	case 5:
		dr := &networking.DestinationRule{ObjectMeta: m}
		dr.Spec.Host = g.host()
		dr.Spec.Subsets = []*v1alpha3.Subset{{Name: "v1", Labels: map[string]string{"v": "1"}}, {Name: "v2", Labels: g.labels()}}
		return KindDestinationRule + "/" + m.Namespace + "/" + m.Name, dr
	case 6:
		name := g.pick("n1", "n2", "n3")
		labels := map[string]string{"topology.kubernetes.io/zone": g.pick("z1", "z2", ""), "other": "x"}
		return KindNode + "//" + name, liveNode{name, labels}
	default:
		w := Workload{Kind: g.pick("Pod", "Deployment"), Namespace: m.Namespace, Name: m.Name, Labels: g.labels(), NodeName: g.pick("n1", "n2", "n3", "")}
		return "Workload/" + w.Namespace + "/" + w.Kind + "/" + w.Name, w
	}
}

type liveNode struct {
	name   string
	labels map[string]string
}

// scratch builds the snapshot of the objects from nothing, in the order load.Loader gives.
func scratch(objs map[string]any) *Snapshot {
	s := &Snapshot{}
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if n, ok := objs[k].(liveNode); ok {
			if s.NodeLabels == nil {
				s.NodeLabels = map[string]map[string]string{}
			}
			s.NodeLabels[n.name] = n.labels
			continue
		}
		s.Add(objs[k])
	}
	return s
}

func apply(l *Live, obj any) {
	if n, ok := obj.(liveNode); ok {
		l.SetNode(n.name, n.labels)
		return
	}
	l.Set(obj)
}

func remove1(l *Live, key string, obj any) {
	switch o := obj.(type) {
	case liveNode:
		l.Delete(KindNode, "", o.name)
	case Workload:
		l.Delete(o.Kind, o.Namespace, o.Name)
	case interface {
		GetNamespace() string
		GetName() string
	}:
		kind, _, _ := cutKind(key)
		l.Delete(kind, o.GetNamespace(), o.GetName())
	}
}

func cutKind(key string) (string, string, bool) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

var liveCmp = []cmp.Option{
	cmp.AllowUnexported(Snapshot{}, index{}, seHost{}),
	cmpopts.IgnoreFields(Snapshot{}, "once", "idx"),
	cmpopts.IgnoreFields(index{}, "memoMu", "gwPods"),
	// The same objects go into both snapshots: they must be the very same pointers.
	cmp.Comparer(func(a, b *corev1.Service) bool { return a == b }),
	cmp.Comparer(func(a, b *networking.ServiceEntry) bool { return a == b }),
	cmp.Comparer(func(a, b *networking.Gateway) bool { return a == b }),
	cmp.Comparer(func(a, b *networking.VirtualService) bool { return a == b }),
	cmp.Comparer(func(a, b *networking.DestinationRule) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// TestLiveEqualsScratch: after any sequence of adds, updates and deletes, the live snapshot, its
// index and its findings equal those of a snapshot built from scratch from the same objects.
func TestLiveEqualsScratch(t *testing.T) {
	o := DefaultOptions().withDefaults()
	for seed := range uint64(30) {
		g := liveGen{rand.New(rand.NewPCG(seed, 8))}
		objs := map[string]any{}
		for range g.r.IntN(20) {
			k, obj := g.object()
			objs[k] = obj
		}
		l := NewLive(scratch(objs), o)
		var trail []string
		for step := range 120 {
			k, obj := g.object()
			old, present := objs[k]
			if present && g.r.IntN(3) == 0 {
				remove1(l, k, old)
				delete(objs, k)
				trail = append(trail, "delete "+k)
			} else if !present && g.r.IntN(10) == 0 {
				remove1(l, k, obj) // absent: nothing happens
				trail = append(trail, "delete absent "+k)
			} else {
				apply(l, obj)
				objs[k] = obj
				trail = append(trail, "set "+k)
			}
			if step%5 == 0 {
				// Check between events, so the gateway memo is filled and must be reset.
				Check(l.Snapshot(), o)
			}
			want := scratch(objs)
			wantIdx := buildIndex(want, o)
			if diff := cmp.Diff(want, l.Snapshot(), liveCmp...); diff != "" {
				t.Fatalf("seed %d after %v: snapshot (-scratch +live):\n%s", seed, trail, diff)
			}
			if diff := cmp.Diff(wantIdx, l.x, liveCmp...); diff != "" {
				t.Fatalf("seed %d after %v: index (-scratch +live):\n%s", seed, trail, diff)
			}
			if diff := cmp.Diff(Check(want, o), Check(l.Snapshot(), o)); diff != "" {
				t.Fatalf("seed %d after %v: findings (-scratch +live):\n%s", seed, trail, diff)
			}
		}
	}
}
