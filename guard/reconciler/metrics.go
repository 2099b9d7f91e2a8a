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

// changeFindings moves the gauge from an object's previous findings to its current ones, so that one
// check costs its own findings, not every object's; the caller holds the lock.
func (m *Metrics) changeFindings(prev, current []guard.Finding) {
	for _, f := range prev {
		m.add(f, -1)
	}
	for _, f := range current {
		m.add(f, 1)
	}
}

func (m *Metrics) add(f guard.Finding, d float64) {
	if _, ok := guard.Descriptions[f.Code]; !ok || (f.Severity != guard.SeverityError && f.Severity != guard.SeverityWarning) {
		return // only the pre-set series move
	}
	m.Findings.WithLabelValues(string(f.Code), string(f.Severity)).Add(d)
}
