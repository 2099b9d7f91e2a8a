package config

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
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
	if host, port, err := net.SplitHostPort(in.XDSAddress); err != nil || host == "" {
		errs = append(errs, field.Invalid(p.Child("xdsAddress"), in.XDSAddress, "must be host:port, such as istiod.istio-system.svc:15010"))
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		errs = append(errs, field.Invalid(p.Child("xdsAddress"), in.XDSAddress, "port must be 1-65535"))
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
