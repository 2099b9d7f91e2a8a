package main

import (
	"context"
	"crypto/tls"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/meshwarden/meshwarden/config"
)

// certsWiring is how the certificate mode plugs into serve: TLS options for the webhook server, a
// readiness check, and runnables (the leader-only writer, the caBundle keeper) for the manager.
type certsWiring struct {
	// TLSOpts are applied to the webhook server's tls.Config (e.g. GetCertificate). When empty the
	// server serves tls.crt/tls.key from cfg.Certs.Dir through controller-runtime's certwatcher.
	TLSOpts []func(*tls.Config)
	// Ready passes once a valid certificate is loaded (and, in self mode, the caBundle matches it).
	Ready healthz.Checker
	// AddToManager adds the mode's runnables; nil when there are none.
	AddToManager func(ctrl.Manager) error
}

// setupCerts prepares webhook TLS for cfg.Certs.Mode. Owned by the certs work (issue 6); until then the
// server serves whatever is in the cert directory.
func setupCerts(ctx context.Context, cfg *config.Config) (certsWiring, error) {
	_, _ = ctx, cfg
	return certsWiring{}, nil
}
