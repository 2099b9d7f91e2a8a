package reconciler

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	v1alpha3 "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/load"
)

// randomObject makes one object of the kinds the snapshot holds, over few names so that events
// create, update and delete the same objects.
func randomObject(r *rand.Rand) client.Object {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	labels := func() map[string]string {
		return map[string]string{"app": pick("a", "b", "ingress"), "v": pick("1", "2")}
	}
	m := metav1.ObjectMeta{Namespace: pick("shop", "istio-system"), Name: pick("a", "b", "c")}
	switch r.IntN(7) {
	case 0:
		s := &corev1.Service{ObjectMeta: m}
		s.Spec.Selector = map[string]string{"app": pick("a", "b", "ingress")}
		s.Spec.Ports = []corev1.ServicePort{{Port: []int32{80, 443}[r.IntN(2)]}}
		return s
	case 1:
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, Labels: labels()},
			Spec: corev1.PodSpec{NodeName: pick("n1", "n2")}}
	case 2:
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: pick("n1", "n2"), Labels: map[string]string{"topology.kubernetes.io/zone": pick("z1", "z2")}}}
	case 3:
		se := &networking.ServiceEntry{ObjectMeta: m}
		se.Spec.Hosts = []string{pick("ext.example.com", "*.example.com", "a")}
		return se
	case 4:
		gw := &networking.Gateway{ObjectMeta: m}
		gw.Spec.Selector = map[string]string{"app": pick("ingress", "b")}
		gw.Spec.Servers = []*v1alpha3.Server{{Port: &v1alpha3.Port{Number: []uint32{80, 443, 8080}[r.IntN(3)]}, Hosts: []string{"*"}}}
		return gw
	case 5:
		v := vs(m.Namespace, m.Name, pick("mesh", "a", "istio-system/b"), "")
		v.Spec.Hosts = []string{pick("a", "ext.example.com")}
		v.Spec.Http = []*v1alpha3.HTTPRoute{{Route: []*v1alpha3.HTTPRouteDestination{{Destination: &v1alpha3.Destination{Host: pick("a", "b", "c", "x.example.com"), Subset: pick("", "v1", "v2")}}}}}
		return v
	default:
		d := dr(m.Namespace, m.Name, pick("a", "b", "c", "*.example.com"))
		d.Spec.Subsets = []*v1alpha3.Subset{{Name: "v1", Labels: map[string]string{"v": "1"}}, {Name: "v2", Labels: []map[string]string{{"v": "2"}, {"v": "3"}, {"topology.kubernetes.io/zone": "z1"}}[r.IntN(3)]}}
		return d
	}
}

// TestIncrementalSnapshot: after creates, updates and deletes in the cache, each told to Invalidate
// with its object, the reconciler's snapshot gives the same findings as one rebuilt from the cache.
func TestIncrementalSnapshot(t *testing.T) {
	ctx := context.Background()
	o := guard.DefaultOptions()
	for seed := range uint64(8) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		c := fake.NewClientBuilder().WithScheme(newScheme(t)).Build()
		r := &Reconciler{Client: c, Options: o, Log: logr.Discard()}
		if _, err := r.snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		for step := range 150 {
			obj := randomObject(rnd)
			cur := obj.DeepCopyObject().(client.Object)
			var err error
			switch exists := c.Get(ctx, client.ObjectKeyFromObject(obj), cur) == nil; {
			case exists && rnd.IntN(3) == 0:
				err = c.Delete(ctx, cur)
			case exists:
				obj.SetResourceVersion(cur.GetResourceVersion())
				err = c.Update(ctx, obj)
			default:
				err = c.Create(ctx, obj)
			}
			if err != nil {
				t.Fatal(err)
			}
			r.Invalidate(obj)
			if step%10 != 9 {
				continue
			}
			r.snapMu.Lock()
			snap, err := r.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := guard.Check(snap, o)
			r.snapMu.Unlock()
			if r.dirty || !r.built {
				t.Fatal("the reconciler fell back to a full rebuild")
			}
			l := load.New("")
			if err := l.AddCluster(ctx, c); err != nil {
				t.Fatal(err)
			}
			want := guard.Check(l.Snapshot(), o)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("seed %d step %d: findings (-rebuilt +incremental):\n%s", seed, step, diff)
			}
		}
	}
}

// TestInvalidateFallsBack: with a nil object, before the first snapshot, or past maxPending changes,
// the next check rebuilds from the cache.
func TestInvalidateFallsBack(t *testing.T) {
	r := &Reconciler{Client: fake.NewClientBuilder().WithScheme(newScheme(t)).Build(), Options: guard.DefaultOptions(), Log: logr.Discard()}
	r.Invalidate(svc("shop", "a"))
	if !r.dirty {
		t.Error("an event before the first snapshot did not ask for a rebuild")
	}
	if _, err := r.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Invalidate(svc("shop", "a"))
	if r.dirty || len(r.pending) != 1 {
		t.Errorf("one event: dirty %v, %d pending; want an incremental change", r.dirty, len(r.pending))
	}
	for i := range maxPending {
		r.Invalidate(svc("shop", fmt.Sprint(i)))
	}
	if !r.dirty || r.pending != nil {
		t.Error("past maxPending changes the next check does not rebuild")
	}
	r.dirty = false
	r.Invalidate(nil)
	if !r.dirty {
		t.Error("Invalidate without objects does not ask for a rebuild")
	}
}
