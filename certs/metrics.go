package certs

import (
	"crypto/tls"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics, on controller-runtime's registry (served at --metrics-addr). Expiry is a timestamp so an
// alert can say "expires in less than N days" whatever the configured lifetimes are.
var (
	servingExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshwarden_certs_serving_expiry_timestamp_seconds",
		Help: "NotAfter of the serving certificate this replica presents, as a Unix timestamp.",
	})
	servingReloads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshwarden_certs_serving_reloads_total",
		Help: "Times this replica started presenting a different serving certificate.",
	})
	secretWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshwarden_certs_secret_writes_total",
		Help: "Writes of the self-mode certificate Secret by this replica as leader (create, repair, rotation).",
	})
	caBundleRestores = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshwarden_certs_cabundle_restores_total",
		Help: "Webhook configurations whose caBundle this replica put back, by kind.",
	}, []string{"kind"})
)

func init() {
	metrics.Registry.MustRegister(servingExpiry, servingReloads, secretWrites, caBundleRestores)
	// Pre-initialised so dashboards see zeros rather than no series.
	caBundleRestores.WithLabelValues("MutatingWebhookConfiguration")
	caBundleRestores.WithLabelValues("ValidatingWebhookConfiguration")
}

func observeServed(c *tls.Certificate) {
	servingReloads.Inc()
	if c.Leaf != nil {
		servingExpiry.Set(float64(c.Leaf.NotAfter.Unix()))
	}
}
