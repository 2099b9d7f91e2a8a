// Package certs provides the webhook server's TLS in one of three modes and keeps the webhook
// configurations' caBundle trusting it:
//
//   - self: a Secret is the single source of truth for a CA and the serving certificate. Every replica
//     serves from it; only the leader writes it, rotating before expiry (a new CA joins the caBundle
//     before it signs anything) and repairing a Secret that is empty or malformed.
//   - files: serve tls.crt/tls.key from a directory, trust ca.crt from it.
//   - cert-manager: serve the files cert-manager's Certificate puts there; its cainjector keeps caBundle.
//
// In every mode the certificate is swapped in memory without a restart, and readiness waits for a valid
// certificate and (when meshwarden keeps caBundle) for the cluster to trust it.
package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/meshwarden/meshwarden/certs/pki"
	"github.com/meshwarden/meshwarden/config"
)

// caSettle is how long a new CA must sit in every caBundle before it signs the served certificate.
const caSettle = 3 * time.Second

// Provider is one replica's webhook TLS for the configured mode.
type Provider struct {
	cfg      config.Certs
	ns       string
	http2    bool
	selector labels.Selector
	policy   Policy
	served   *served
	log      logr.Logger
	now      func() time.Time

	view    atomic.Pointer[view]     // set by Runnables
	watcher *certwatcher.CertWatcher // files and cert-manager modes
}

// New prepares the mode in cfg.Certs. It reads nothing from the cluster yet (see Runnables); in files
// and cert-manager modes it loads the certificate files, so a missing mount fails at start with a hint.
func New(cfg *config.Config, log logr.Logger) (*Provider, error) {
	c := cfg.Certs
	sel, err := labels.Parse(c.WebhookSelector)
	if err != nil {
		return nil, fmt.Errorf("certs.webhookSelector %q: %w", c.WebhookSelector, err)
	}
	p := &Provider{cfg: c, ns: cfg.Namespace, http2: cfg.Server.EnableHTTP2, selector: sel, served: &served{}, log: log, now: time.Now}
	switch c.Mode {
	case config.CertSelf:
		p.policy = Policy{
			CAValidity: c.CAValidity.Duration, CertValidity: c.CertValidity.Duration, RenewFraction: c.RenewFraction,
			Names:      pki.ServiceNames(c.ServiceName, cfg.Namespace, c.ExtraSANs),
			CommonName: c.ServiceName + "." + cfg.Namespace + ".svc",
		}
		if p.policy.CAValidity <= 0 || p.policy.CertValidity <= 0 || p.policy.RenewFraction <= 0 || p.policy.RenewFraction >= 1 {
			return nil, fmt.Errorf("certs: caValidity and certValidity must be positive and renewFraction in (0,1), got %s, %s, %v",
				c.CAValidity.Duration, c.CertValidity.Duration, c.RenewFraction)
		}
		p.served.waiting = fmt.Sprintf("Secret %s/%s has no usable certificate yet (the leader creates it)", cfg.Namespace, c.SecretName)
	case config.CertFiles, config.CertCertManager:
		certFile, keyFile := filepath.Join(c.Dir, "tls.crt"), filepath.Join(c.Dir, "tls.key")
		p.served.waiting = "reading " + certFile
		w, err := certwatcher.New(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("certs.mode %s: loading %s and %s: %w; mount the certificate Secret at certs.dir (--cert-dir) or use certs.mode self",
				c.Mode, certFile, keyFile, err)
		}
		w.RegisterCallback(func(tc tls.Certificate) {
			if p.served.set(&tc) && tc.Leaf != nil {
				log.Info("serving certificate loaded", "file", certFile, "notAfter", tc.Leaf.NotAfter.Format(time.RFC3339))
				// A new pair usually comes with a new ca.crt: let the keeper look now.
				if v := p.view.Load(); v != nil {
					v.poke()
				}
			}
		})
		p.watcher = w
	default:
		return nil, fmt.Errorf("certs.mode %q: use self, files or cert-manager", c.Mode)
	}
	return p, nil
}

// keepsBundle reports whether this replica's leader patches caBundle.
func (p *Provider) keepsBundle() bool {
	return p.cfg.Mode != config.CertCertManager && p.cfg.PatchCABundle != nil && *p.cfg.PatchCABundle
}

// TLSOptions configure the webhook server: certificates from memory, TLS 1.2 at least (Go negotiates
// 1.3 whenever the client can), and HTTP/1.1 only unless HTTP/2 is enabled in config, because HTTP/2
// rapid-reset attacks cost an HTTP/1.1 server nothing.
func (p *Provider) TLSOptions() []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		c.GetCertificate = p.served.GetCertificate
		if !p.http2 {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
}

// GetCertificate is the served certificate, for servers built without TLSOptions.
func (p *Provider) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.served.GetCertificate(h)
}

// Ready is the /readyz check: a valid certificate is loaded and, when meshwarden keeps caBundle,
// every selected webhook configuration trusts it.
func (p *Provider) Ready(*http.Request) error {
	now := p.now()
	c, err := p.served.check(now)
	if err != nil {
		return err
	}
	if !p.keepsBundle() {
		return nil
	}
	v := p.view.Load()
	if v == nil || !v.isSynced() {
		return errors.New("webhook configurations not watched yet (if this lasts, check RBAC: get/list/watch on mutating/validatingwebhookconfigurations and on the Secret)")
	}
	return v.keeper.trusted(c.Leaf, now)
}

// Runnables are what the mode runs inside the manager: every replica watches (and reloads), the
// leader writes the Secret and caBundle.
func (p *Provider) Runnables(rc *rest.Config) ([]manager.Runnable, error) {
	var rs []manager.Runnable
	if p.watcher != nil {
		rs = append(rs, p.watcher)
	}
	self := p.cfg.Mode == config.CertSelf
	if !self && !p.keepsBundle() {
		return rs, nil
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	log := p.log
	v := newView(client, p.ns, p.cfg.SecretName, p.selector, self, p.keepsBundle(), loadSecret(p.served, log))
	if v.keeper != nil {
		v.keeper.log = log
	}
	p.view.Store(v)
	rs = append(rs, v)
	if self {
		rs = append(rs, &writer{client: client, namespace: p.ns, secretName: p.cfg.SecretName, policy: p.policy,
			view: v, served: p.served, log: log, now: p.now, settle: caSettle})
	} else {
		rs = append(rs, &fileKeeper{caFile: filepath.Join(p.cfg.Dir, "ca.crt"), view: v, log: log})
	}
	return rs, nil
}

// AddToManager adds Runnables to mgr.
func (p *Provider) AddToManager(mgr manager.Manager) error {
	rs, err := p.Runnables(mgr.GetConfig())
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := mgr.Add(r); err != nil {
			return err
		}
	}
	return nil
}
