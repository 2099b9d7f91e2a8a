package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	admissionv1 "k8s.io/api/admission/v1"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/templates"
	"github.com/meshwarden/meshwarden/webhook"
)

var update = flag.Bool("update", false, "rewrite testdata/large-review.json from typical-review.json")

// Sizes of the large pod: the 2,000 env vars, spread over 10 containers.
const (
	largeContainers = 10
	largeEnvVars    = 2000
)

// review reads a review from testdata as the compact JSON the API server sends.
func review(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return buf.Bytes()
}

// largeFrom builds the large review from the typical one: the typical container copied to 10
// containers with 2,000 env vars between them. managedFields stay those of the typical pod, so the
// large floor is, if anything, cheaper than a real API server's request would make it.
func largeFrom(typical []byte) ([]byte, error) {
	var r map[string]any
	if err := json.Unmarshal(typical, &r); err != nil {
		return nil, err
	}
	spec := r["request"].(map[string]any)["object"].(map[string]any)["spec"].(map[string]any)
	base := spec["containers"].([]any)[0].(map[string]any)
	baseEnv := base["env"].([]any)
	perContainer := largeEnvVars / largeContainers
	var containers []any
	for i := range largeContainers {
		c := map[string]any{}
		for k, v := range base {
			c[k] = v
		}
		if i > 0 {
			c["name"] = base["name"].(string) + "-" + strconv.Itoa(i)
			c["ports"] = []any{map[string]any{"name": "http-" + strconv.Itoa(i), "containerPort": 9080 + i, "protocol": "TCP"}}
		}
		env := append([]any(nil), baseEnv...)
		for j := len(env); j < perContainer; j++ {
			env = append(env, map[string]any{"name": "FEATURE_" + strconv.Itoa(i) + "_" + strconv.Itoa(j), "value": "value-" + strconv.Itoa(j) + "-of-container-" + strconv.Itoa(i)})
		}
		c["env"] = env
		containers = append(containers, c)
	}
	spec["containers"] = containers
	return json.Marshal(r)
}

// TestLargeReviewInSync keeps testdata/large-review.json what largeFrom makes of the typical review.
func TestLargeReviewInSync(t *testing.T) {
	want, err := largeFrom(review(t, "typical-review.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "large-review.json")
	if *update {
		if err := os.WriteFile(path, append(want, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := review(t, "large-review.json"); !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; run go test ./bench -run TestLargeReviewInSync -update", path)
	}
}

// TestReviewsInject proves the benchmark measures injection with the istio profile (the default):
// both pods are injected with a patch that adds istio-proxy and sends the app's probes through the
// agent, and the floor answers the same reviews with an allow and no patch.
func TestReviewsInject(t *testing.T) {
	for _, name := range []string{"typical-review.json", "large-review.json"} {
		body := review(t, name)
		got := answer(t, newHandler(t, false), body)
		if !got.Allowed || len(got.Patch) == 0 {
			t.Errorf("%s: injected answer %+v, want allowed with a patch", name, got)
		}
		for _, want := range []string{`"name":"istio-proxy"`, `"path":"/app-health/reviews/readyz"`, `"path":"/app-health/reviews/livez"`, "ISTIO_KUBE_APP_PROBERS"} {
			if !strings.Contains(string(got.Patch), want) {
				t.Errorf("%s: the patch lacks %s: the benchmark must measure the istio profile with probe rewriting", name, want)
			}
		}
		if got := answer(t, newHandler(t, true), body); !got.Allowed || len(got.Patch) != 0 {
			t.Errorf("%s: floor answer %+v, want allowed without a patch", name, got)
		}
	}
}

func answer(t *testing.T, h http.Handler, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	w := &sink{}
	h.ServeHTTP(w, newRequest(body))
	if w.code != 0 && w.code != http.StatusOK {
		t.Fatalf("status %d: %s", w.code, w.body.String())
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(w.body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out.Response
}

// newHandler builds the /inject handler as `meshwarden serve` does: default config and templates,
// a JSON zap logger at info level (discarded), metrics; floor selects the floor handler.
func newHandler(tb testing.TB, floor bool) *webhook.InjectHandler {
	tb.Helper()
	cfg, err := config.Load("")
	if err != nil {
		tb.Fatal(err)
	}
	in, err := inject.New(cfg, inject.StaticTemplates{Set: templates.Default()})
	if err != nil {
		tb.Fatal(err)
	}
	return &webhook.InjectHandler{
		Injector:   in,
		Namespaces: enabledNamespace,
		Log:        serveLogger(),
		Metrics:    webhook.NewMetrics(nil),
		Floor:      floor,
	}
}

func enabledNamespace(_ context.Context, name string) (inject.Namespace, error) {
	return inject.Namespace{Name: name, Labels: map[string]string{inject.NamespaceLabel: "enabled"}}, nil
}

// serveLogger is serve's default logger (JSON, info) writing nowhere: WithValues costs what it does
// in production, V(1) lines are dropped as they are there.
func serveLogger() logr.Logger {
	return crzap.New(crzap.WriteTo(io.Discard), crzap.UseDevMode(false))
}

// sink is a reusable ResponseWriter, so the benchmark measures the handler, not a recorder.
type sink struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (s *sink) Header() http.Header {
	if s.h == nil {
		s.h = http.Header{}
	}
	return s.h
}
func (s *sink) WriteHeader(code int)        { s.code = code }
func (s *sink) Write(p []byte) (int, error) { return s.body.Write(p) }
func (s *sink) reset()                      { s.code = 0; s.body.Reset() }

// body is a request body that can be rewound without allocating.
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

func newRequest(b []byte) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1/inject", &body{*bytes.NewReader(b)})
	r.Header.Set("Content-Type", "application/json")
	return r
}

// BenchmarkReview answers one AdmissionReview: floor (decode and re-encode, no mutation) and the
// injected pod, for the typical and the large pod, in that alternating order. cmd/benchreport runs it
// several times in one `make bench` and compares each injected result with the floor of its round.
func BenchmarkReview(b *testing.B) {
	cases := []struct{ name, file string }{
		{"floor", "typical-review.json"},
		{"typical", "typical-review.json"},
		{"floor_large", "large-review.json"},
		{"large", "large-review.json"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			raw := review(b, c.file)
			h := newHandler(b, c.name == "floor" || c.name == "floor_large")
			r := newRequest(raw)
			rd := r.Body.(*body)
			w := &sink{}
			// One review first: the render cache is filled once per process, not per review.
			h.ServeHTTP(w, r)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rd.Reset(raw)
				w.reset()
				h.ServeHTTP(w, r)
			}
			b.StopTimer()
			if w.code != 0 && w.code != http.StatusOK {
				b.Fatalf("status %d: %s", w.code, w.body.String())
			}
		})
	}
}

// BenchmarkReviewPair answers the same review with the floor handler and the injecting one in turn,
// every iteration, so that a busy machine slows both alike; BenchmarkReview's consecutive runs are
// seconds apart. It reports each side's wall-clock ns per review, and the CPU time of the benchmark's
// own thread (locked to it) per review, which a shared machine's descheduling does not inflate.
func BenchmarkReviewPair(b *testing.B) {
	for _, c := range []struct{ name, file string }{{"typical", "typical-review.json"}, {"large", "large-review.json"}} {
		b.Run(c.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			raw := review(b, c.file)
			var side [2]struct {
				h    *webhook.InjectHandler
				r    *http.Request
				w    sink
				wall time.Duration
				cpu  time.Duration
			}
			for i := range side {
				side[i].h = newHandler(b, i == 0)
				side[i].r = newRequest(raw)
				side[i].h.ServeHTTP(&side[i].w, side[i].r) // fill the render cache
			}
			for b.Loop() {
				for i := range side {
					s := &side[i]
					s.r.Body.(*body).Reset(raw)
					s.w.reset()
					c0, t0 := threadCPU(), time.Now()
					s.h.ServeHTTP(&s.w, s.r)
					s.wall += time.Since(t0)
					s.cpu += threadCPU() - c0
				}
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(side[0].wall)/n, "floor-ns/review")
			b.ReportMetric(float64(side[1].wall)/n, "ns/review")
			b.ReportMetric(float64(side[0].cpu)/n, "floor-cpu-ns/review")
			b.ReportMetric(float64(side[1].cpu)/n, "cpu-ns/review")
		})
	}
}

// threadCPU is the CPU time of the calling OS thread (CLOCK_THREAD_CPUTIME_ID: the scheduler's exact
// runtime; getrusage's per-thread figure is rescaled from ticks and jumps by hundreds of µs).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
