package main

import (
	"context"
	"crypto/tls"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/meshwarden/meshwarden/certs"
	"github.com/meshwarden/meshwarden/config"
)

// certsWiring is how the certificate mode plugs into serve: TLS options for the webhook server, a
// readiness check, and runnables (the leader-only writer, the caBundle keeper) for the manager.
type certsWiring struct {
	// TLSOpts are applied to the webhook server's tls.Config: GetCertificate from memory (so the
	// server's own certwatcher is not used), TLS 1.2 minimum, and HTTP/1.1 only unless
	// cfg.Server.EnableHTTP2.
	TLSOpts []func(*tls.Config)
	// Ready passes once a valid certificate is loaded and, when meshwarden keeps caBundle, every
	// selected webhook configuration trusts it.
	Ready healthz.Checker
	// AddToManager adds the mode's runnables: watchers on every replica, writers on the leader.
	AddToManager func(ctrl.Manager) error
}

// setupCerts prepares webhook TLS for cfg.Certs.Mode. In files and cert-manager modes it fails at
// once when tls.crt/tls.key are not in cfg.Certs.Dir.
func setupCerts(_ context.Context, cfg *config.Config) (certsWiring, error) {
	p, err := certs.New(cfg, ctrl.Log.WithName("certs"))
	if err != nil {
		return certsWiring{}, err
	}
	return certsWiring{
		TLSOpts:      p.TLSOptions(),
		Ready:        p.Ready,
		AddToManager: func(m ctrl.Manager) error { return p.AddToManager(m) },
	}, nil
}
