package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/meshwarden/meshwarden/inject"
)

// TestMetricsCountOutcomes: each outcome lands in its series, and a panic is recovered (500), counted,
// and does not take the handler down.
func TestMetricsCountOutcomes(t *testing.T) {
	h := handler(t)
	reg := prometheus.NewRegistry()
	h.Metrics = NewMetrics(reg)
	post := func(pod string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(review(admissionv1.Create, "Pod", pod))))
		return rec.Code
	}
	post(plainPod)
	post(`{"metadata":{"labels":{"sidecar.meshwarden.io/inject":"false"}},"spec":{"containers":[{"name":"a"}]}}`)
	post(`{"metadata":{"annotations":{"sidecar.meshwarden.io/proxyCPU":"lots"}},"spec":{"containers":[{"name":"a"}]}}`)

	lookup := h.Namespaces
	h.Namespaces = func(context.Context, string) (inject.Namespace, error) { panic("boom") }
	if code := post(plainPod); code != http.StatusInternalServerError {
		t.Fatalf("panic answered %d, want 500", code)
	}
	h.Namespaces = lookup
	if code := post(plainPod); code != http.StatusOK {
		t.Fatalf("after a panic the handler answers %d", code)
	}

	for name, c := range map[string]struct {
		got  prometheus.Collector
		want float64
	}{
		"injected":      {h.Metrics.Requests.WithLabelValues("injected"), 2},
		"injections":    {h.Metrics.Injections, 2},
		"skipped":       {h.Metrics.Requests.WithLabelValues("skipped"), 1},
		"skip reason":   {h.Metrics.Skips.WithLabelValues(string(inject.SkipPodOptOut)), 1},
		"denied":        {h.Metrics.Requests.WithLabelValues("denied"), 1},
		"denial reason": {h.Metrics.Denials.WithLabelValues(string(inject.DenyInvalidAnnotation)), 1},
		"panics":        {h.Metrics.Panics, 1},
		"errors":        {h.Metrics.Requests.WithLabelValues("error"), 1},
	} {
		if got := testutil.ToFloat64(c.got); got != c.want {
			t.Errorf("%s = %v, want %v", name, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(h.Metrics.Duration); n != 1 {
		t.Errorf("latency histogram has %d series", n)
	}
}
