package bench

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/load"
	"github.com/meshwarden/meshwarden/guard/reconciler"
)

// fill builds the synthetic cluster into the store, one object at a time through the transforms, so
// that only the transformed objects stay, as with an informer.
func fill(tb testing.TB, s *store, c clusterSize) {
	tb.Helper()
	base := typicalPod(tb)
	add := func(o client.Object) {
		if err := s.add(o); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range c.nodes {
		add(c.node(i))
	}
	for i := range c.services {
		add(c.service(i))
	}
	for i := range c.pods {
		add(c.pod(base, i))
	}
	for i := range c.gateways {
		add(c.gateway(i))
	}
	for i := range c.virtualServices {
		add(c.virtualService(i))
	}
	for i := range c.destinationRules {
		add(c.destinationRule(i))
	}
}

// fullEval is everything from the cache to the findings: list every kind into a snapshot
// (what the reconciler does on a rebuild), index it, check every VirtualService, DestinationRule and Gateway.
func fullEval(tb testing.TB, s *store) []guard.Finding {
	l := load.New("")
	if err := l.AddCluster(context.Background(), s, client.UnsafeDisableDeepCopy); err != nil {
		tb.Fatal(err)
	}
	return guard.Check(l.Snapshot(), s.opts)
}

// serviceDeleted is what the reconciler queues when a Service goes (reconciler.(*Reconciler).service,
// unexported, mirrored here): what routes to its host (the host field index), and the Gateways whose
// selector matches a pod the Service selects (or selects on node topology).
func serviceDeleted(tb testing.TB, s *store, svc *corev1.Service) []reconciler.Key {
	ctx := context.Background()
	var keys []reconciler.Key
	host := guard.ServiceHost(svc, s.opts)
	var vss networking.VirtualServiceList
	var drs networking.DestinationRuleList
	var pods corev1.PodList
	var gws networking.GatewayList
	for _, err := range []error{
		s.List(ctx, &vss, client.MatchingFields{reconciler.IndexHost: host}, client.UnsafeDisableDeepCopy),
		s.List(ctx, &drs, client.MatchingFields{reconciler.IndexHost: host}, client.UnsafeDisableDeepCopy),
		s.List(ctx, &pods, client.InNamespace(svc.Namespace), client.UnsafeDisableDeepCopy),
		s.List(ctx, &gws, client.UnsafeDisableDeepCopy),
	} {
		if err != nil {
			tb.Fatal(err)
		}
	}
	for _, o := range vss.Items {
		keys = append(keys, reconciler.Key{Kind: guard.KindVirtualService, Namespace: o.Namespace, Name: o.Name})
	}
	for _, o := range drs.Items {
		keys = append(keys, reconciler.Key{Kind: guard.KindDestinationRule, Namespace: o.Namespace, Name: o.Name})
	}
	var selected []map[string]string
	for _, p := range pods.Items {
		if len(svc.Spec.Selector) > 0 && subset(svc.Spec.Selector, p.Labels) {
			selected = append(selected, p.Labels)
		}
	}
	for _, g := range gws.Items {
		if len(g.Spec.Selector) == 0 || len(selected) == 0 {
			continue
		}
		for _, l := range selected {
			if guard.SelectsOnTopology(g.Spec.Selector) || subset(g.Spec.Selector, l) {
				keys = append(keys, reconciler.Key{Kind: guard.KindGateway, Namespace: g.Namespace, Name: g.Name})
				break
			}
		}
	}
	return keys
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// invalidate is the watch event's call into the reconciler: Invalidate(obj) where the reconciler
// applies changes one by one, Invalidate() where it rebuilds its snapshot.
func invalidate(r *reconciler.Reconciler, obj client.Object) {
	switch inv := any(r).(type) {
	case interface{ Invalidate(client.Object) }:
		inv.Invalidate(obj)
	case interface{ Invalidate() }:
		inv.Invalidate()
	}
}

type nopRecorder struct{}

func (nopRecorder) Eventf(kruntime.Object, kruntime.Object, string, string, string, string, ...any) {}

// rssMiB reads the process's resident set after a GC that returns freed memory to the OS.
func rssMiB(tb testing.TB) (rss, heap float64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			rss = kb / 1024
		}
	}
	return rss, float64(ms.HeapInuse) / (1 << 20)
}

func median(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

// BenchmarkGuard evaluates the synthetic cluster (10,000 Services, 5,000 VirtualServices, 5,000
// DestinationRules, 500 Gateways, 20,000 pods with -bench.full) from an informer-like store:
//   - full-ms: snapshot from the store and guard.Check of everything;
//   - incremental-ms: one Service deleted, then reconciler.Reconcile for every key the reconciler
//     queues for that, its snapshot brought up to date by the reconciler's own means;
//   - snapshot-ms: the snapshot rebuild alone (list from the store, index);
//   - incremental-checks-ms: the same Reconciles again on the up-to-date snapshot: the checks alone;
//   - rss-MiB / heap-MiB: the process holding the store and the reconciler's snapshot, after GC.
//
// It ignores b.N: each measurement is repeated a fixed number of times and the median reported.
func BenchmarkGuard(b *testing.B) {
	c, reps := smallCluster, 1
	if *full {
		c, reps = fullCluster, 3
	}
	rss0, _ := rssMiB(b)
	o := guard.DefaultOptions()
	s := newStore(o)
	fill(b, s, c)

	var full, rebuild []time.Duration
	var findings int
	for range reps {
		t0 := time.Now()
		l := load.New("")
		if err := l.AddCluster(context.Background(), s, client.UnsafeDisableDeepCopy); err != nil {
			b.Fatal(err)
		}
		guard.CheckObject(l.Snapshot(), o, nil) // builds the index, checks nothing
		rebuild = append(rebuild, time.Since(t0))
	}
	for range reps {
		t0 := time.Now()
		findings = len(fullEval(b, s))
		full = append(full, time.Since(t0))
	}
	if findings == 0 {
		b.Fatal("the synthetic cluster has deliberate mistakes; no findings means the checks did not run")
	}

	r := &reconciler.Reconciler{Client: s, Recorder: nopRecorder{}, Options: o, Metrics: reconciler.NewMetrics(nil), Log: logr.Discard()}
	ctx := context.Background()
	// The reconciler has its snapshot from startup before any change comes.
	if _, err := r.Reconcile(ctx, reconciler.Key{Kind: guard.KindVirtualService, Namespace: ns(0, c.namespaces), Name: "vs-0"}); err != nil {
		b.Fatal(err)
	}
	var incr, checks []time.Duration
	var queued int
	for i := range reps {
		svc := c.service(i * c.namespaces) // in ns-000, routed to by vs-<i*ns> and dr-<i*ns>
		if err := s.delete(svc); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		keys := serviceDeleted(b, s, svc)
		invalidate(r, svc) // the watch event
		for _, k := range keys {
			if _, err := r.Reconcile(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		incr = append(incr, time.Since(t0))
		queued = len(keys)

		// The same keys again on the snapshot the reconciler now holds: the checks alone.
		t0 = time.Now()
		for _, k := range keys {
			if _, err := r.Reconcile(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
		checks = append(checks, time.Since(t0))
		back := c.service(i * c.namespaces)
		if err := s.add(back); err != nil {
			b.Fatal(err)
		}
		invalidate(r, back)
	}
	rss, heap := rssMiB(b)
	runtime.KeepAlive(r)
	runtime.KeepAlive(s)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(full), "full-ms")
	b.ReportMetric(median(incr), "incremental-ms")
	b.ReportMetric(median(rebuild), "snapshot-ms")
	b.ReportMetric(median(checks), "incremental-checks-ms")
	b.ReportMetric(float64(queued), "queued-keys")
	b.ReportMetric(float64(findings), "findings")
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(rss0, "rss-before-MiB")
	b.ReportMetric(heap, "heap-MiB")
}
