package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshwarden/meshwarden/inject"
)

// Metrics are the injector's Prometheus series. Labels are bounded: results and reasons are constants.
type Metrics struct {
	Requests   *prometheus.CounterVec
	Injections prometheus.Counter
	Skips      *prometheus.CounterVec
	Denials    *prometheus.CounterVec
	Duration   prometheus.Histogram
	Panics     prometheus.Counter
}

// NewMetrics creates the series and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshwarden_injector_requests_total", Help: "Admission requests to /inject by result (injected, skipped, denied, error).",
		}, []string{"result"}),
		Injections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshwarden_injector_injections_total", Help: "Pods injected (or found already injected).",
		}),
		Skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshwarden_injector_skips_total", Help: "Pods not injected, by reason.",
		}, []string{"reason"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshwarden_injector_denials_total", Help: "Pods denied, by reason.",
		}, []string{"reason"}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshwarden_injector_request_duration_seconds", Help: "Time to answer one /inject request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshwarden_injector_panics_total", Help: "Panics recovered while answering /inject.",
		}),
	}
	// Pre-initialise every series so dashboards and alerts see zeros, not gaps.
	for _, r := range []string{"injected", "skipped", "denied", "error"} {
		m.Requests.WithLabelValues(r)
	}
	for _, r := range inject.AllReasons() {
		m.Skips.WithLabelValues(string(r))
		m.Denials.WithLabelValues(string(r))
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Injections, m.Skips, m.Denials, m.Duration, m.Panics)
	}
	return m
}
