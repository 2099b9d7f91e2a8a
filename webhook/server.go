package webhook

import (
	"crypto/tls"

	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// ServerOptions are the HTTPS settings of the admission server.
type ServerOptions struct {
	Host    string
	Port    int
	CertDir string
	// EnableHTTP2 is off unless asked for: HTTP/2 rapid reset and its kin cost nothing to an
	// HTTP/1.1-only server, and the API server's webhook client is happy with HTTP/1.1.
	EnableHTTP2 bool
	// TLSOpts come last, so a certificate mode can set GetCertificate.
	TLSOpts []func(*tls.Config)
}

// NewServer builds the admission server used by `meshwarden serve` and by the benchmarks: TLS 1.2 at
// least (1.3 preferred by Go's defaults), certificates reloaded from CertDir by controller-runtime's
// certwatcher unless a TLS option supplies GetCertificate.
func NewServer(o ServerOptions) crwebhook.Server {
	opts := append([]func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if !o.EnableHTTP2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}, o.TLSOpts...)
	return crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir, TLSOpts: opts})
}
