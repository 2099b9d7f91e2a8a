package guard

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/meshwarden/meshwarden/config"
)

// Resource names the object a finding is about.
type Resource struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String is "Kind ns/name", or "Kind name" for an object without a namespace.
func (r Resource) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Finding is one problem with one field of one object.
type Finding struct {
	Code     Code     `json:"code"`
	Severity Severity `json:"severity"`
	Resource Resource `json:"resource"`
	// Field is the path of the offending field, such as spec.http[1].route[0].destination.subset.
	Field   string `json:"field"`
	Message string `json:"message"`
}

// String is the one-line text form used by `meshwarden check` and the admission denial.
func (f Finding) String() string {
	return fmt.Sprintf("%s [%s] %s %s: %s", label(f.Severity), f.Code, f.Resource, f.Field, f.Message)
}

// Short is the form used for admission warnings and Events, where the object is already known.
func (f Finding) Short() string {
	return fmt.Sprintf("[%s] %s: %s", f.Code, f.Field, f.Message)
}

// Key identifies a finding independently of field indexes, so that inserting a route before a broken
// one does not make the broken one look new.
func (f Finding) Key() string { return string(f.Code) + "|" + f.Message }

func label(s Severity) string {
	switch s {
	case SeverityError:
		return "Error"
	case SeverityWarning:
		return "Warning"
	default:
		return "Info"
	}
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == SeverityError })
}

// Sort orders findings by resource, field and code, so output does not depend on input order.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Resource.Kind, b.Resource.Kind), cmp.Compare(a.Resource.Namespace, b.Resource.Namespace),
			cmp.Compare(a.Resource.Name, b.Resource.Name), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Message, b.Message))
	})
}

// Options are the engine's settings, normally taken from the config file's guard section.
type Options struct {
	// ClusterDomain is the DNS suffix of in-cluster Services.
	ClusterDomain string
	// MissingDestinationRuleHost is the severity of CodeDestinationRuleHostNotFound.
	MissingDestinationRuleHost Severity
	// AllowAnyOutbound downgrades CodeRouteHostNotFound to a warning: unknown hosts pass through.
	AllowAnyOutbound bool
}

// OptionsFrom takes the engine options from the config file's guard section.
func OptionsFrom(g config.Guard) Options {
	return Options{ClusterDomain: g.ClusterDomain, MissingDestinationRuleHost: g.MissingDestinationRuleHost, AllowAnyOutbound: g.AllowAnyOutbound}
}

// DefaultOptions are the options of an empty config file.
func DefaultOptions() Options {
	c := config.Config{}
	c.Default()
	return OptionsFrom(c.Guard)
}

func (o Options) withDefaults() Options {
	if o.ClusterDomain == "" {
		o.ClusterDomain = "cluster.local"
	}
	if o.MissingDestinationRuleHost == "" {
		o.MissingDestinationRuleHost = SeverityWarning
	}
	return o
}
