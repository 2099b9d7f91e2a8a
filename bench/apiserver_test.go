package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshwarden/meshwarden/test/cluster"
)

// apiserver switches on BenchmarkGuardAPIServer, which needs the control plane binaries in bin/
// (`make tools`) and several minutes: it is `make bench`'s last step, never `make test`'s.
var apiserver = flag.Bool("bench.apiserver", false, "run BenchmarkGuardAPIServer on a local control plane (make bench)")

// creators is how many objects are created at once; the API server and etcd share the machine.
const creators = 24

// BenchmarkGuardAPIServer measures the resident memory of a real `meshwarden serve` whose caches hold
// the synthetic cluster: a local control plane (test/cluster: etcd, kube-apiserver, controllers, kwok
// nodes) gets the Istio CRDs and every object of the full-scale cluster, then meshwarden starts, syncs
// its caches (with its cache transforms) and works through the initial reconciles; its VmRSS is read
// from /proc once its reconcile count has stopped moving.
func BenchmarkGuardAPIServer(b *testing.B) {
	if !*apiserver {
		b.Skip("needs -bench.apiserver (make bench) and the control plane in bin/")
	}
	binDir, err := cluster.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	if missing := cluster.MissingTools(binDir); len(missing) > 0 {
		b.Skipf("tools missing from %s: %v (make tools)", binDir, missing)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	c := fullCluster
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%5.0fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	cl, err := cluster.Start(ctx, cluster.Options{Nodes: c.pods/200 + 1, Logf: logf})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Stop()
	if err := cl.InstallIstioCRDs(ctx); err != nil {
		b.Fatal(err)
	}
	cfg := cl.RESTConfig()
	cfg.QPS, cfg.Burst = 5000, 5000
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = networking.AddToScheme(scheme)
	k, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	logf("creating %d namespaces", c.namespaces+2)
	nss := []string{"istio-system", "meshwarden"}
	for i := range c.namespaces {
		nss = append(nss, ns(i, c.namespaces))
	}
	parallel(b, len(nss), func(i int) error { return cl.CreateNamespace(ctx, nss[i], nil) })

	base := typicalPod(b)
	fresh := func(m *metav1.ObjectMeta) {
		m.UID, m.ResourceVersion, m.ManagedFields, m.CreationTimestamp, m.Generation = "", "", nil, metav1.Time{}, 0
	}
	// The typical pod's projected token volume names its own ServiceAccount; here the admission
	// plugin adds the default one's.
	base.Spec.ServiceAccountName, base.Spec.DeprecatedServiceAccount = "", ""
	base.Spec.Volumes = base.Spec.Volumes[:1]
	base.Spec.Containers[0].VolumeMounts = base.Spec.Containers[0].VolumeMounts[:1]
	kinds := []struct {
		name string
		n    int
		make func(i int) client.Object
	}{
		{"Services", c.services, func(i int) client.Object {
			s := c.service(i)
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
			fresh(&s.ObjectMeta)
			return s
		}},
		{"pods", c.pods, func(i int) client.Object {
			p := c.pod(base, i)
			p.Spec.NodeName = fmt.Sprintf("kwok-node-%d", i%(c.pods/200+1))
			p.GenerateName, p.OwnerReferences, p.Status = "", nil, corev1.PodStatus{}
			fresh(&p.ObjectMeta)
			return p
		}},
		{"Gateways", c.gateways, func(i int) client.Object { g := c.gateway(i); fresh(&g.ObjectMeta); return g }},
		{"VirtualServices", c.virtualServices, func(i int) client.Object { v := c.virtualService(i); fresh(&v.ObjectMeta); return v }},
		{"DestinationRules", c.destinationRules, func(i int) client.Object { d := c.destinationRule(i); fresh(&d.ObjectMeta); return d }},
	}
	for _, kd := range kinds {
		t0 := time.Now()
		parallel(b, kd.n, func(i int) error { return k.Create(ctx, kd.make(i)) })
		logf("created %d %s in %s", kd.n, kd.name, time.Since(t0).Round(time.Second))
	}

	logf("starting meshwarden serve")
	m, err := cl.StartMeshwarden(ctx, cluster.MeshwardenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pid, err := readPID(filepath.Join(cl.Dir(), "meshwarden.pid"))
	if err != nil {
		b.Fatal(err)
	}
	// Settled: at least one reconcile per checked object, and no new ones for 15 s.
	want := float64(c.virtualServices + c.destinationRules + c.gateways)
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", m.MetricsPort)
	var last float64
	stable := time.Now()
	for {
		n, err := reconciles(ctx, metrics)
		if err != nil {
			b.Fatalf("reading %s: %v", metrics, err)
		}
		if n != last {
			last, stable = n, time.Now()
		}
		if n >= want && time.Since(stable) > 15*time.Second {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("meshwarden did not settle: %v reconciles, want %v; log: %s", n, want, m.LogFile())
		}
		time.Sleep(2 * time.Second)
	}
	rss, hwm, err := procMemory(pid)
	if err != nil {
		b.Fatal(err)
	}
	logf("meshwarden settled after %v reconciles: VmRSS %.1f MiB, VmHWM %.1f MiB", last, rss, hwm)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(hwm, "peak-rss-MiB")
	b.ReportMetric(last, "reconciles")
}

// parallel runs f(0..n-1) on `creators` goroutines and fails on the first error.
func parallel(b *testing.B, n int, f func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

func readPID(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// reconciles is meshwarden_guard_reconcile_seconds_count from the metrics endpoint.
func reconciles(ctx context.Context, url string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "meshwarden_guard_reconcile_seconds_count "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, sc.Err()
}

// procMemory is VmRSS and VmHWM of a process, in MiB.
func procMemory(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm, nil
}
