package inject

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshwarden/meshwarden/didyoumean"
)

// Annotation and label keys. Every key in a meshwarden domain must be one of these; anything else is
// denied with a did-you-mean, because a misspelt override silently ignored is a lost hour for the user.
const (
	LabelInject       = "sidecar.meshwarden.io/inject" // pod label (also accepted as an annotation)
	NamespaceLabel    = "meshwarden.io/inject"         // namespace label: enabled | disabled
	AnnotationStatus  = "sidecar.meshwarden.io/status"
	AnnotationDefault = "kubectl.kubernetes.io/default-container"

	AnnProxyCPU         = "sidecar.meshwarden.io/proxyCPU"
	AnnProxyMemory      = "sidecar.meshwarden.io/proxyMemory"
	AnnProxyCPULimit    = "sidecar.meshwarden.io/proxyCPULimit"
	AnnProxyMemoryLimit = "sidecar.meshwarden.io/proxyMemoryLimit"
	AnnProxyImage       = "sidecar.meshwarden.io/proxyImage"
	AnnLogLevel         = "sidecar.meshwarden.io/logLevel"
	AnnInterception     = "sidecar.meshwarden.io/interceptionMode"
	AnnStatusPort       = "sidecar.meshwarden.io/statusPort"
	AnnNativeSidecar    = "sidecar.meshwarden.io/nativeSidecar"
	AnnHoldApplication  = "sidecar.meshwarden.io/holdApplicationUntilProxyStarts"
	AnnRewriteProbers   = "sidecar.meshwarden.io/rewriteAppProbers"

	AnnIncludeOutboundIPRanges = "traffic.meshwarden.io/includeOutboundIPRanges"
	AnnExcludeOutboundIPRanges = "traffic.meshwarden.io/excludeOutboundIPRanges"
	AnnIncludeInboundPorts     = "traffic.meshwarden.io/includeInboundPorts"
	AnnExcludeInboundPorts     = "traffic.meshwarden.io/excludeInboundPorts"
	AnnIncludeOutboundPorts    = "traffic.meshwarden.io/includeOutboundPorts"
	AnnExcludeOutboundPorts    = "traffic.meshwarden.io/excludeOutboundPorts"

	AnnTemplates = "inject.meshwarden.io/templates"
)

// Overrides are a pod's validated per-pod settings. A field is nil/empty when the pod does not set it.
type Overrides struct {
	ProxyCPU, ProxyMemory, ProxyCPULimit, ProxyMemoryLimit *resource.Quantity
	ProxyImage                                             string
	LogLevel                                               string
	InterceptionMode                                       string
	StatusPort                                             int32
	NativeSidecar, HoldApplication, Inject                 *bool
	RewriteAppProbers                                      *bool
	IncludeOutboundIPRanges, ExcludeOutboundIPRanges       *string
	IncludeInboundPorts, ExcludeInboundPorts               *string
	IncludeOutboundPorts, ExcludeOutboundPorts             *string
	Templates                                              []string
}

// parser validates one annotation value and stores it into Overrides.
type parser func(v string, o *Overrides) error

var parsers = map[string]parser{
	AnnProxyCPU:                quantity(func(o *Overrides) **resource.Quantity { return &o.ProxyCPU }),
	AnnProxyMemory:             quantity(func(o *Overrides) **resource.Quantity { return &o.ProxyMemory }),
	AnnProxyCPULimit:           quantity(func(o *Overrides) **resource.Quantity { return &o.ProxyCPULimit }),
	AnnProxyMemoryLimit:        quantity(func(o *Overrides) **resource.Quantity { return &o.ProxyMemoryLimit }),
	AnnProxyImage:              parseImage,
	AnnLogLevel:                oneOf(func(o *Overrides) *string { return &o.LogLevel }, "trace", "debug", "info", "warning", "error", "critical", "off"),
	AnnInterception:            oneOf(func(o *Overrides) *string { return &o.InterceptionMode }, "REDIRECT", "TPROXY", "NONE"),
	AnnStatusPort:              parseStatusPort,
	AnnNativeSidecar:           boolean(func(o *Overrides) **bool { return &o.NativeSidecar }),
	AnnHoldApplication:         boolean(func(o *Overrides) **bool { return &o.HoldApplication }),
	AnnRewriteProbers:          boolean(func(o *Overrides) **bool { return &o.RewriteAppProbers }),
	LabelInject:                boolean(func(o *Overrides) **bool { return &o.Inject }),
	AnnIncludeOutboundIPRanges: cidrs(true, func(o *Overrides) **string { return &o.IncludeOutboundIPRanges }),
	AnnExcludeOutboundIPRanges: cidrs(false, func(o *Overrides) **string { return &o.ExcludeOutboundIPRanges }),
	AnnIncludeInboundPorts:     ports(true, func(o *Overrides) **string { return &o.IncludeInboundPorts }),
	AnnExcludeInboundPorts:     ports(false, func(o *Overrides) **string { return &o.ExcludeInboundPorts }),
	AnnIncludeOutboundPorts:    ports(false, func(o *Overrides) **string { return &o.IncludeOutboundPorts }),
	AnnExcludeOutboundPorts:    ports(false, func(o *Overrides) **string { return &o.ExcludeOutboundPorts }),
	AnnTemplates:               parseTemplates,
	AnnotationStatus:           parseStatusAnnotation,
}

// ParseAnnotations validates every meshwarden annotation of a pod and returns the overrides they set.
// fldPath is the path of the annotations map (metadata.annotations for a pod,
// spec.template.metadata.annotations for a workload); every error names its key under it.
func ParseAnnotations(annotations map[string]string, fldPath *field.Path) (Overrides, field.ErrorList) {
	var o Overrides
	var errs field.ErrorList
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		if inMeshwardenDomain(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // stable message order
	for _, k := range keys {
		v := annotations[k]
		p, ok := parsers[k]
		if !ok {
			errs = append(errs, field.Forbidden(fldPath.Key(k), unknownKeyMessage(k)))
			continue
		}
		if err := p(v, &o); err != nil {
			errs = append(errs, field.Invalid(fldPath.Key(k), shorten(v), err.Error()))
		}
	}
	return o, errs
}

// ValidateAnnotations is ParseAnnotations for callers that only need the verdict, such as the guard's
// check of a workload's pod template at apply time: the messages are the ones the pod itself would get.
func ValidateAnnotations(annotations map[string]string, fldPath *field.Path) field.ErrorList {
	_, errs := ParseAnnotations(annotations, fldPath)
	return errs
}

func inMeshwardenDomain(key string) bool {
	domain, _, ok := strings.Cut(key, "/")
	return ok && (domain == "meshwarden.io" || strings.HasSuffix(domain, ".meshwarden.io"))
}

// knownKeys lists what a pod may carry, for did-you-mean.
func knownKeys() []string {
	keys := make([]string, 0, len(parsers))
	for k := range parsers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func unknownKeyMessage(key string) string {
	if s := didyoumean.Closest(key, knownKeys()); s != "" {
		return fmt.Sprintf("unknown meshwarden annotation; did you mean %q?", s)
	}
	return "unknown meshwarden annotation; see the README for the supported sidecar.meshwarden.io, traffic.meshwarden.io and inject.meshwarden.io keys"
}

// shorten keeps denial messages readable when a value is huge; the user still sees where it starts.
func shorten(v string) string {
	const max = 64
	if len(v) <= max {
		return v
	}
	return v[:max] + "..."
}

func quantity(dst func(*Overrides) **resource.Quantity) parser {
	return func(v string, o *Overrides) error {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return fmt.Errorf("must be a positive quantity such as 100m, 0.5 or 128Mi")
		}
		*dst(o) = &q
		return nil
	}
}

func oneOf(dst func(*Overrides) *string, allowed ...string) parser {
	return func(v string, o *Overrides) error {
		for _, a := range allowed {
			if v == a {
				*dst(o) = v
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func boolean(dst func(*Overrides) **bool) parser {
	return func(v string, o *Overrides) error {
		switch v {
		case "true":
			b := true
			*dst(o) = &b
		case "false":
			b := false
			*dst(o) = &b
		default:
			return fmt.Errorf(`must be "true" or "false"`)
		}
		return nil
	}
}

func parseImage(v string, o *Overrides) error {
	if _, err := reference.ParseNormalizedNamed(v); err != nil || v != strings.TrimSpace(v) {
		return fmt.Errorf("must be an image reference such as envoyproxy/envoy:v1.36.2")
	}
	o.ProxyImage = v
	return nil
}

// reservedPorts are the proxy's own ports; a status port on one of them would break the proxy.
var reservedPorts = map[int32]bool{15000: true, 15001: true, 15006: true, 15090: true}

func parseStatusPort(v string, o *Overrides) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 || n > 65535 || reservedPorts[int32(n)] {
		return fmt.Errorf("must be a port number 1-65535 other than 15000, 15001, 15006 and 15090")
	}
	o.StatusPort = int32(n)
	return nil
}

// cidrs accepts a comma-separated list of CIDRs; "*" (all) only where the flag's meaning allows it.
func cidrs(allowStar bool, dst func(*Overrides) **string) parser {
	return func(v string, o *Overrides) error {
		norm, err := normaliseList(v, allowStar, func(item string) (string, error) {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return "", err
			}
			return p.String(), nil
		})
		if err != nil {
			if allowStar {
				return fmt.Errorf(`must be "*" or a comma-separated list of CIDRs such as 10.0.0.0/8,fd00::/8`)
			}
			return fmt.Errorf("must be a comma-separated list of CIDRs such as 10.0.0.0/8,fd00::/8")
		}
		*dst(o) = &norm
		return nil
	}
}

func ports(allowStar bool, dst func(*Overrides) **string) parser {
	return func(v string, o *Overrides) error {
		norm, err := normaliseList(v, allowStar, func(item string) (string, error) {
			n, err := strconv.ParseUint(item, 10, 16)
			if err != nil || n == 0 {
				return "", fmt.Errorf("bad port")
			}
			return strconv.FormatUint(n, 10), nil
		})
		if err != nil {
			if allowStar {
				return fmt.Errorf(`must be "*" or a comma-separated list of ports 1-65535 such as 80,443`)
			}
			return fmt.Errorf("must be a comma-separated list of ports 1-65535 such as 80,443")
		}
		*dst(o) = &norm
		return nil
	}
}

// normaliseList checks each item of a comma list and returns the list re-joined in canonical form, so
// the value that reaches the init container's arguments is ours, never the user's raw bytes.
func normaliseList(v string, allowStar bool, item func(string) (string, error)) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if v == "*" {
		if !allowStar {
			return "", fmt.Errorf("* not allowed")
		}
		return "*", nil
	}
	parts := strings.Split(v, ",")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		s, err := item(strings.TrimSpace(p))
		if err != nil {
			return "", err
		}
		out = append(out, s)
	}
	return strings.Join(out, ","), nil
}

func parseTemplates(v string, o *Overrides) error {
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if len(validation.IsDNS1123Subdomain(n)) > 0 {
			return fmt.Errorf("must be a comma-separated list of template names such as sidecar,extra")
		}
		o.Templates = append(o.Templates, n)
	}
	return nil
}

func parseStatusAnnotation(v string, _ *Overrides) error {
	var s Status
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return fmt.Errorf("is written by meshwarden and is not valid; remove the annotation and re-apply")
	}
	return nil
}
