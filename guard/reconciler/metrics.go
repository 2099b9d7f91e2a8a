package reconciler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshwarden/meshwarden/guard"
)

// Metrics are the guard's Prometheus series. Labels are bounded: codes and severities are fixed sets.
type Metrics struct {
	Findings           *prometheus.GaugeVec
	ReconcileSeconds   prometheus.Histogram
	PodsWithoutSidecar prometheus.Gauge
}

// NewMetrics registers the guard's series on reg, every code and severity pre-set to zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Findings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshwarden_guard_findings", Help: "Current config guard findings on Istio objects, by code and severity.",
		}, []string{"code", "severity"}),
		ReconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshwarden_guard_reconcile_seconds", Help: "Time to check one Istio object, snapshot rebuild included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		PodsWithoutSidecar: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshwarden_guard_pods_without_sidecar", Help: "Pods in injection-enabled namespaces that run without the envoy sidecar.",
		}),
	}
	for code := range guard.Descriptions {
		for _, s := range []guard.Severity{guard.SeverityError, guard.SeverityWarning} {
			m.Findings.WithLabelValues(string(code), string(s))
		}
	}
	if reg != nil {
		reg.MustRegister(m.Findings, m.ReconcileSeconds, m.PodsWithoutSidecar)
	}
	return m
}

// setFindings recomputes the gauge from the current findings of every object; the caller holds the lock.
func (m *Metrics) setFindings(current map[Key][]guard.Finding) {
	counts := map[[2]string]int{}
	for _, fs := range current {
		for _, f := range fs {
			counts[[2]string{string(f.Code), string(f.Severity)}]++
		}
	}
	for code := range guard.Descriptions {
		for _, s := range []guard.Severity{guard.SeverityError, guard.SeverityWarning} {
			m.Findings.WithLabelValues(string(code), string(s)).Set(float64(counts[[2]string{string(code), string(s)}]))
		}
	}
}
