package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshwarden/meshwarden/proxyconfig"
)

// Validate checks the whole configuration and reports every problem, each naming its field and the
// accepted form.
func (c *Config) Validate() error {
	var errs field.ErrorList
	if c.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{APIVersion}))
	}
	if c.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{Kind}))
	}
	errs = append(errs, c.Injection.validate(field.NewPath("injection"))...)
	errs = append(errs, c.Guard.validate(field.NewPath("guard"))...)
	errs = append(errs, c.Certs.validate(field.NewPath("certs"))...)
	errs = append(errs, c.LeaderElection.validate(field.NewPath("leaderElection"))...)
	if d := c.Server.DrainDelay; d != nil && (d.Duration < 0 || d.Duration >= c.Server.ShutdownGrace.Duration+time.Minute) {
		errs = append(errs, field.Invalid(field.NewPath("server", "drainDelay"), d.String(), "must be between 0s and a minute more than shutdownGrace, such as 5s"))
	}
	return errs.ToAggregate()
}

func (in *Injection) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if in.DefaultPolicy != PolicyEnabled && in.DefaultPolicy != PolicyDisabled {
		errs = append(errs, field.NotSupported(p.Child("defaultPolicy"), in.DefaultPolicy, []Policy{PolicyEnabled, PolicyDisabled}))
	}
	for name, sels := range map[string][]metav1.LabelSelector{"neverInjectSelector": in.NeverInjectSelector, "alwaysInjectSelector": in.AlwaysInjectSelector} {
		for i := range sels {
			if _, err := metav1.LabelSelectorAsSelector(&sels[i]); err != nil {
				errs = append(errs, field.Invalid(p.Child(name).Index(i), sels[i].String(), err.Error()))
			}
		}
	}
	for _, q := range []struct{ name, v string }{{"proxyCPU", in.ProxyCPU}, {"proxyMemory", in.ProxyMemory}, {"proxyCPULimit", in.ProxyCPULimit}, {"proxyMemoryLimit", in.ProxyMemLimit}} {
		if q.v == "" {
			continue
		}
		if _, err := resource.ParseQuantity(q.v); err != nil {
			errs = append(errs, field.Invalid(p.Child(q.name), q.v, "must be a quantity such as 100m, 0.5 or 128Mi"))
		}
	}
	switch in.Profile {
	case ProfileIstio:
		errs = append(errs, in.Istio.validate(p.Child("istio"))...)
		if in.Interception == "TPROXY" {
			errs = append(errs, field.NotSupported(p.Child("interceptionMode"), in.Interception, []string{"REDIRECT", "NONE"}))
		}
		if h, ok := in.Istio.ProxyConfig["holdApplicationUntilProxyStarts"]; ok && in.HoldApp && h == false {
			errs = append(errs, field.Invalid(p.Child("holdApplicationUntilProxyStarts"), true,
				"contradicts injection.istio.proxyConfig.holdApplicationUntilProxyStarts: false; keep one of the two"))
		}
		if in.XDSAddress != "" {
			errs = append(errs, field.Forbidden(p.Child("xdsAddress"), "only the envoy profile uses it; with the istio profile set injection.istio.discoveryAddress (istiod's host:port)"))
		}
		if in.XDSTLS != nil {
			errs = append(errs, field.Forbidden(p.Child("xdsTLS"), "only the envoy profile uses it; the istio profile talks TLS to istiod on its own"))
		}
	case ProfileEnvoy:
		if in.XDSAddress == "" {
			errs = append(errs, field.Required(p.Child("xdsAddress"), "the envoy profile needs the host:port of your xDS server, such as xds.my-mesh.svc:18000 (or use profile: istio with istiod)"))
		} else {
			errs = append(errs, validateHostPort(p.Child("xdsAddress"), in.XDSAddress)...)
		}
		if t := in.XDSTLS; t != nil && t.SecretName == "" {
			errs = append(errs, field.Required(p.Child("xdsTLS", "secretName"), "name of a Secret in the pod's namespace with ca.crt (and tls.crt, tls.key for a client certificate)"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("profile"), in.Profile, []Profile{ProfileIstio, ProfileEnvoy}))
	}
	switch in.Interception {
	case "REDIRECT", "TPROXY", "NONE":
	default:
		errs = append(errs, field.NotSupported(p.Child("interceptionMode"), in.Interception, []string{"REDIRECT", "TPROXY", "NONE"}))
	}
	if in.StatusPort < 1 || in.StatusPort > 65535 {
		errs = append(errs, field.Invalid(p.Child("statusPort"), in.StatusPort, "must be a port number 1-65535"))
	}
	if in.ProxyImage == "" || in.InitImage == "" {
		errs = append(errs, field.Required(p.Child("proxyImage"), "both proxyImage and initImage must be set"))
	}
	return errs
}

func (is *IstioProfile) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if is.DiscoveryAddress != "" {
		errs = append(errs, validateHostPort(p.Child("discoveryAddress"), is.DiscoveryAddress)...)
	}
	if msgs := validation.IsDNS1123Label(is.SystemNamespace); len(msgs) > 0 {
		errs = append(errs, field.Invalid(p.Child("systemNamespace"), is.SystemNamespace, "must be a namespace name such as istio-system"))
	}
	for _, f := range []struct{ name, v string }{{"clusterID", is.ClusterID}, {"meshID", is.MeshID}, {"trustDomain", is.TrustDomain}, {"clusterDomain", is.ClusterDomain}} {
		if f.v == "" || strings.ContainsAny(f.v, " \t\n\"'/") {
			errs = append(errs, field.Invalid(p.Child(f.name), f.v, "must be a non-empty name without spaces, quotes or slashes, such as cluster.local"))
		}
	}
	if pc, err := proxyconfig.FromMap(is.ProxyConfig); err != nil {
		fp := p.Child("proxyConfig")
		var pe *proxyconfig.Error
		if errors.As(err, &pe) && pe.Field != "" {
			fp = fp.Child(pe.Field)
		}
		errs = append(errs, field.Invalid(fp, field.OmitValueType{}, err.Error()+"; see Istio's ProxyConfig reference"))
	} else {
		errs = append(errs, proxyconfig.Check(p.Child("proxyConfig"), pc)...)
	}
	if is.ProxyImage == "" {
		errs = append(errs, field.Required(p.Child("proxyImage"), "an Istio proxy image such as "+DefaultIstioProxyImage))
	}
	return errs
}

func validateHostPort(p *field.Path, v string) field.ErrorList {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return field.ErrorList{field.Invalid(p, v, "must be host:port, such as istiod.istio-system.svc:15012")}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return field.ErrorList{field.Invalid(p, v, "port must be 1-65535")}
	}
	return nil
}

func (g *Guard) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch g.DefaultMode {
	case GuardWarn, GuardDeny, GuardOff:
	default:
		errs = append(errs, field.NotSupported(p.Child("defaultMode"), g.DefaultMode, []GuardMode{GuardWarn, GuardDeny, GuardOff}))
	}
	switch g.MissingDestinationRuleHost {
	case SeverityError, SeverityWarning, SeverityInfo:
	default:
		errs = append(errs, field.NotSupported(p.Child("missingDestinationRuleHost"), g.MissingDestinationRuleHost, []Severity{SeverityError, SeverityWarning, SeverityInfo}))
	}
	if g.Debounce.Duration < 0 {
		errs = append(errs, field.Invalid(p.Child("debounce"), g.Debounce.String(), "must not be negative"))
	}
	return errs
}

func (ct *Certs) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch ct.Mode {
	case CertSelf, CertCertManager, CertFiles:
	default:
		errs = append(errs, field.NotSupported(p.Child("mode"), ct.Mode, []CertMode{CertSelf, CertCertManager, CertFiles}))
	}
	if ct.RenewFraction <= 0 || ct.RenewFraction >= 1 {
		errs = append(errs, field.Invalid(p.Child("renewFraction"), fmt.Sprint(ct.RenewFraction), "must be between 0 and 1, such as 0.33"))
	}
	if ct.CertValidity.Duration >= ct.CAValidity.Duration {
		errs = append(errs, field.Invalid(p.Child("certValidity"), ct.CertValidity.String(), "must be shorter than caValidity"))
	}
	if _, err := labels.Parse(ct.WebhookSelector); err != nil {
		errs = append(errs, field.Invalid(p.Child("webhookSelector"), ct.WebhookSelector, "must be a label selector such as app.kubernetes.io/part-of=meshwarden"))
	}
	return errs
}

func (le *LeaderElection) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if le.RenewDeadline.Duration >= le.LeaseDuration.Duration {
		errs = append(errs, field.Invalid(p.Child("renewDeadline"), le.RenewDeadline.String(), "must be shorter than leaseDuration"))
	}
	if le.RetryPeriod.Duration >= le.RenewDeadline.Duration {
		errs = append(errs, field.Invalid(p.Child("retryPeriod"), le.RetryPeriod.String(), "must be shorter than renewDeadline"))
	}
	return errs
}
