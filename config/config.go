// Package config is meshwarden's versioned configuration file: its types, defaults, loading and the one
// place where it is validated. Command-line flags override what the file says; see cmd/meshwarden.
package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/version"
)

// APIVersion and Kind identify the file format, so that a later format can be told apart.
const (
	APIVersion = "config.meshwarden.io/v1alpha1"
	Kind       = "MeshwardenConfig"
)

// Config is the whole configuration file.
type Config struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	// Namespace is meshwarden's own namespace: never injected, and where its Secret and Lease live.
	Namespace      string         `json:"namespace,omitempty"`
	Injection      Injection      `json:"injection,omitempty"`
	Guard          Guard          `json:"guard,omitempty"`
	Certs          Certs          `json:"certs,omitempty"`
	LeaderElection LeaderElection `json:"leaderElection,omitempty"`
	Server         Server         `json:"server,omitempty"`
}

// Policy is the injection policy inside an opted-in namespace.
type Policy string

// Policies: enabled injects every pod that does not opt out; disabled injects only pods that opt in.
const (
	PolicyEnabled  Policy = "enabled"
	PolicyDisabled Policy = "disabled"
)

// Injection configures the sidecar injector.
type Injection struct {
	DefaultPolicy Policy `json:"defaultPolicy,omitempty"`
	// NeverInjectSelector and AlwaysInjectSelector are consulted when the pod has no explicit
	// sidecar.meshwarden.io/inject label; never wins over always.
	NeverInjectSelector  []metav1.LabelSelector `json:"neverInjectSelector,omitempty"`
	AlwaysInjectSelector []metav1.LabelSelector `json:"alwaysInjectSelector,omitempty"`
	// Templates are the template names applied when a pod does not name its own.
	Templates []string `json:"templates,omitempty"`
	// TemplatesDir holds extra or replacement templates (a mounted ConfigMap); watched for changes.
	TemplatesDir string `json:"templatesDir,omitempty"`
	// TemplatesConfigMap names the ConfigMap (in Namespace) mounted at TemplatesDir. Events about
	// template reloads (TemplatesRejected, TemplatesLoaded) are recorded on it.
	TemplatesConfigMap string `json:"templatesConfigMap,omitempty"`
	// Profile picks what a pod gets: istio (the default: an istio-proxy sidecar run by pilot-agent and
	// served by istiod) or envoy (a stock Envoy for users who run their own xDS server).
	Profile Profile `json:"profile,omitempty"`
	// Istio configures the istio profile.
	Istio IstioProfile `json:"istio,omitempty"`
	// ProxyImage is the envoy profile's proxy image; the istio profile's is istio.proxyImage.
	ProxyImage string `json:"proxyImage,omitempty"`
	// InitImage is meshwarden-init's image; it defaults to the tag of this meshwarden build.
	InitImage string `json:"initImage,omitempty"`
	// XDSAddress is host:port of the ADS server every proxy fetches its configuration from (envoy
	// profile only, and required there: there is no meshwarden xDS server to default to).
	XDSAddress string `json:"xdsAddress,omitempty"`
	// XDSTLS makes the envoy profile's ADS connection TLS.
	XDSTLS        *XDSTLS        `json:"xdsTLS,omitempty"`
	ProxyLogLevel string         `json:"proxyLogLevel,omitempty"`
	ProxyCPU      string         `json:"proxyCPU,omitempty"`
	ProxyMemory   string         `json:"proxyMemory,omitempty"`
	ProxyCPULimit string         `json:"proxyCPULimit,omitempty"`
	ProxyMemLimit string         `json:"proxyMemoryLimit,omitempty"`
	NativeSidecar *bool          `json:"nativeSidecar,omitempty"`
	HoldApp       bool           `json:"holdApplicationUntilProxyStarts,omitempty"`
	Interception  string         `json:"interceptionMode,omitempty"`
	StatusPort    int32          `json:"statusPort,omitempty"`
	Extra         map[string]any `json:"values,omitempty"`
}

// Profile is what injection adds to a pod.
type Profile string

// Profiles.
const (
	ProfileIstio Profile = "istio"
	ProfileEnvoy Profile = "envoy"
)

// IstioProfile configures the istio profile: the facts pilot-agent and istiod need about the mesh.
type IstioProfile struct {
	// ProxyImage is Istio's proxy image (proxyv2), pinned to a release; never :latest.
	ProxyImage string `json:"proxyImage,omitempty"`
	// SystemNamespace is where istiod runs.
	SystemNamespace string `json:"systemNamespace,omitempty"`
	// DiscoveryAddress is istiod's TLS xDS and CA address. Empty means istiod.<systemNamespace>.svc:15012,
	// or istiod-<rev>.<systemNamespace>.svc:15012 for a pod labelled istio.io/rev=<rev>.
	DiscoveryAddress string `json:"discoveryAddress,omitempty"`
	// ClusterID, MeshID, TrustDomain and Network are the proxy's node metadata; MeshID defaults to the
	// trust domain, as in Istio.
	ClusterID   string `json:"clusterID,omitempty"`
	MeshID      string `json:"meshID,omitempty"`
	TrustDomain string `json:"trustDomain,omitempty"`
	Network     string `json:"network,omitempty"`
	// ClusterDomain is the DNS suffix of in-cluster Services, for the agent's --domain.
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// ProxyConfig is Istio's ProxyConfig (mesh.istio.io), given to every proxy in PROXY_CONFIG; a pod's
	// proxy.istio.io/config annotation replaces the fields it sets.
	ProxyConfig map[string]any `json:"proxyConfig,omitempty"`
	// RewriteAppProbers sends the app's httpGet, tcpSocket and grpc probes through the agent (:15020),
	// so they pass under capture and STRICT mTLS. Pods turn it off with
	// sidecar.istio.io/rewriteAppHTTPProbers: "false".
	RewriteAppProbers *bool `json:"rewriteAppProbers,omitempty"`
	// PrometheusMerge points prometheus.io scraping at the agent, which merges the app's metrics.
	PrometheusMerge *bool `json:"prometheusMerge,omitempty"`
}

// XDSTLS is TLS for the envoy profile's ADS connection, from a Secret in the pod's namespace.
type XDSTLS struct {
	// SecretName holds ca.crt and, for a client certificate, tls.crt and tls.key.
	SecretName string `json:"secretName"`
	// ClientCertificate presents tls.crt/tls.key to the xDS server.
	ClientCertificate bool `json:"clientCertificate,omitempty"`
	// ServerName is the name the server's certificate must carry; empty: the xdsAddress host.
	ServerName string `json:"serverName,omitempty"`
}

// Severity is a finding's level as configured.
type Severity string

// Severities a guard check can be configured to.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// GuardMode is what the validating webhook does with findings in a namespace.
type GuardMode string

// Guard modes, also the values of the namespace label meshwarden.io/config-guard.
const (
	GuardWarn GuardMode = "warn"
	GuardDeny GuardMode = "deny"
	GuardOff  GuardMode = "off"
)

// Guard configures the mesh config guard.
type Guard struct {
	DefaultMode GuardMode `json:"defaultMode,omitempty"`
	// ClusterDomain is the DNS suffix of in-cluster Services (name.ns.svc.<domain>).
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// MissingDestinationRuleHost is the severity of a DestinationRule host that matches nothing.
	MissingDestinationRuleHost Severity `json:"missingDestinationRuleHost,omitempty"`
	// AllowAnyOutbound mirrors the mesh's outboundTrafficPolicy ALLOW_ANY: unknown route hosts are warnings.
	AllowAnyOutbound bool `json:"allowAnyOutbound,omitempty"`
	// Debounce is how long the reconciler waits to batch changes before re-checking dependents.
	Debounce metav1.Duration `json:"debounce,omitempty"`
}

// CertMode selects who provides the webhook's serving certificate.
type CertMode string

// Certificate modes.
const (
	CertSelf        CertMode = "self"
	CertCertManager CertMode = "cert-manager"
	CertFiles       CertMode = "files"
)

// Certs configures webhook TLS.
type Certs struct {
	Mode CertMode `json:"mode,omitempty"`
	// Dir holds tls.crt, tls.key (and ca.crt in files mode); reloaded on change.
	Dir string `json:"dir,omitempty"`
	// SecretName is the Secret (in Namespace) that is the single source of truth in self mode.
	SecretName string `json:"secretName,omitempty"`
	// ServiceName is the webhook Service, for the certificate's DNS names.
	ServiceName string   `json:"serviceName,omitempty"`
	ExtraSANs   []string `json:"extraSANs,omitempty"`
	// CAValidity and CertValidity are lifetimes of the self-managed CA and serving certificate.
	CAValidity   metav1.Duration `json:"caValidity,omitempty"`
	CertValidity metav1.Duration `json:"certValidity,omitempty"`
	// RenewFraction: a certificate is rotated when less than this share of its life remains.
	RenewFraction float64 `json:"renewFraction,omitempty"`
	// PatchCABundle keeps caBundle right in the labelled webhook configurations (self and files modes).
	PatchCABundle *bool `json:"patchCABundle,omitempty"`
	// WebhookSelector selects meshwarden's own webhook configurations.
	WebhookSelector string `json:"webhookSelector,omitempty"`
}

// LeaderElection configures the Lease that picks the replica running the reconciler and cert writer.
type LeaderElection struct {
	Enabled       *bool           `json:"enabled,omitempty"`
	LeaseName     string          `json:"leaseName,omitempty"`
	LeaseDuration metav1.Duration `json:"leaseDuration,omitempty"`
	RenewDeadline metav1.Duration `json:"renewDeadline,omitempty"`
	RetryPeriod   metav1.Duration `json:"retryPeriod,omitempty"`
}

// Server configures the HTTPS admission server.
type Server struct {
	// EnableHTTP2 is off by default: HTTP/2 rapid-reset class attacks cost nothing to an HTTP/1.1 server.
	EnableHTTP2 bool `json:"enableHTTP2,omitempty"`
	// ShutdownGrace is how long SIGTERM waits for requests in flight.
	ShutdownGrace metav1.Duration `json:"shutdownGrace,omitempty"`
	// DrainDelay is how long a terminating replica keeps serving while reporting not ready, so that
	// Service endpoints drop it before it stops accepting: without it, requests the API server sends
	// during that window fail, and with failurePolicy Fail so do the pods behind them.
	DrainDelay *metav1.Duration `json:"drainDelay,omitempty"`
}

// Load reads, defaults and validates a config file. An empty path gives the defaults.
func Load(path string) (*Config, error) {
	c := &Config{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		if err := decodeStrict(data, c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	c.Default()
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, err
	}
	return c, nil
}

// Default fills every unset field with its default.
func (c *Config) Default() {
	setStr(&c.APIVersion, APIVersion)
	setStr(&c.Kind, Kind)
	if c.Namespace == "" {
		c.Namespace = os.Getenv("POD_NAMESPACE")
	}
	setStr(&c.Namespace, "meshwarden")
	in := &c.Injection
	if in.DefaultPolicy == "" {
		in.DefaultPolicy = PolicyEnabled
	}
	if in.Profile == "" {
		in.Profile = ProfileIstio
	}
	if len(in.Templates) == 0 {
		in.Templates = []string{DefaultTemplate(in.Profile)}
	}
	setStr(&in.ProxyImage, DefaultProxyImage)
	setStr(&in.InitImage, DefaultInitImage())
	is := &in.Istio
	setStr(&is.ProxyImage, DefaultIstioProxyImage)
	setStr(&is.SystemNamespace, "istio-system")
	setStr(&is.ClusterID, "Kubernetes")
	setStr(&is.TrustDomain, "cluster.local")
	setStr(&is.MeshID, is.TrustDomain)
	setStr(&is.ClusterDomain, "cluster.local")
	if is.RewriteAppProbers == nil {
		is.RewriteAppProbers = ptr(true)
	}
	if is.PrometheusMerge == nil {
		is.PrometheusMerge = ptr(true)
	}
	setStr(&in.ProxyLogLevel, "warning")
	setStr(&in.ProxyCPU, "100m")
	setStr(&in.ProxyMemory, "128Mi")
	setStr(&in.Interception, "REDIRECT")
	if in.NativeSidecar == nil {
		in.NativeSidecar = ptr(true)
	}
	if in.StatusPort == 0 {
		in.StatusPort = 15021
	}
	g := &c.Guard
	if g.DefaultMode == "" {
		g.DefaultMode = GuardWarn
	}
	setStr(&g.ClusterDomain, "cluster.local")
	if g.MissingDestinationRuleHost == "" {
		g.MissingDestinationRuleHost = SeverityWarning
	}
	setDur(&g.Debounce, 500*time.Millisecond)
	ct := &c.Certs
	if ct.Mode == "" {
		ct.Mode = CertSelf
	}
	setStr(&ct.Dir, "/var/run/meshwarden/certs")
	setStr(&ct.SecretName, "meshwarden-webhook-tls")
	setStr(&ct.ServiceName, "meshwarden-webhook")
	setDur(&ct.CAValidity, 10*365*24*time.Hour)
	setDur(&ct.CertValidity, 365*24*time.Hour)
	if ct.RenewFraction == 0 {
		ct.RenewFraction = 1.0 / 3
	}
	if ct.PatchCABundle == nil {
		ct.PatchCABundle = ptr(ct.Mode != CertCertManager)
	}
	setStr(&ct.WebhookSelector, "app.kubernetes.io/part-of=meshwarden")
	le := &c.LeaderElection
	if le.Enabled == nil {
		le.Enabled = ptr(true)
	}
	setStr(&le.LeaseName, "meshwarden-leader")
	setDur(&le.LeaseDuration, 15*time.Second)
	setDur(&le.RenewDeadline, 10*time.Second)
	setDur(&le.RetryPeriod, 2*time.Second)
	setDur(&c.Server.ShutdownGrace, 20*time.Second)
	if c.Server.DrainDelay == nil {
		c.Server.DrainDelay = &metav1.Duration{Duration: 5 * time.Second}
	}
}

// Default images, each pinned: the envoy profile's proxy is a current Envoy release, the istio
// profile's is the Istio release the profile is tested against.
const (
	DefaultProxyImage      = "envoyproxy/envoy:v1.36.2"
	DefaultIstioProxyImage = "docker.io/istio/proxyv2:1.31.0"
	InitImageRepository    = "ghcr.io/meshwarden/meshwarden-init"
)

// DefaultInitImage is meshwarden-init of this very build, so capture always matches the injector.
func DefaultInitImage() string { return InitImageRepository + ":" + version.Version }

// DefaultTemplate is the built-in template of a profile.
func DefaultTemplate(p Profile) string {
	if p == ProfileEnvoy {
		return "sidecar"
	}
	return "istio"
}

// decodeStrict refuses unknown fields, duplicate keys and keys that differ only in case: a misspelt
// setting silently ignored would be a default the user thinks they changed.
func decodeStrict(data []byte, c *Config) error {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, c)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("%s (see config/config.go for the fields)", strings.Join(msgs, "; "))
	}
	return nil
}

func setStr(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func setDur(d *metav1.Duration, v time.Duration) {
	if d.Duration == 0 {
		d.Duration = v
	}
}

func ptr[T any](v T) *T { return &v }
