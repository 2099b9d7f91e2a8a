package inject

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/proxyconfig"
)

// The istio profile's names: Istio's own, because istioctl, Kiali and dashboards look for them.
const (
	IstioProxyName = "istio-proxy"

	AnnProxyConfig         = "proxy.istio.io/config"
	AnnIstioRewriteProbers = "sidecar.istio.io/rewriteAppHTTPProbers"
	AnnIstioPromMerge      = "prometheus.istio.io/merge-metrics"
	LabelIstioRev          = "istio.io/rev"

	LabelTLSMode           = "security.istio.io/tlsMode"
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"

	annPromScrape = "prometheus.io/scrape"
	annPromPort   = "prometheus.io/port"
	annPromPath   = "prometheus.io/path"
	// promPath is where pilot-agent serves the merged metrics of Envoy, itself and the app.
	promPath = "/stats/prometheus"
)

// podFacts are what the istio profile's template needs to know about one pod. They are part of the
// render cache key: the pods of one ReplicaSet share them, so a scaling workload still renders once.
type podFacts struct {
	discovery, proxyConfig           string
	appContainers, podPorts          string
	workloadName, owner              string
	canonicalName, canonicalRevision string
	probers, prometheus              string
	// hold is ProxyConfig's holdApplicationUntilProxyStarts ("true", "false", or "" when unset).
	hold string
}

// cacheable is false for facts so large (a pod with hundreds of probes or ports) that keeping their
// rendering would let a few odd pods fill the cache; those pods are rendered each time instead.
func (f podFacts) cacheable() bool {
	n := len(f.discovery) + len(f.proxyConfig) + len(f.appContainers) + len(f.podPorts) + len(f.workloadName) +
		len(f.owner) + len(f.canonicalName) + len(f.canonicalRevision) + len(f.probers) + len(f.prometheus)
	return n <= 8<<10
}

// podEdits change what the user wrote: probes and Prometheus annotations that must point at the agent.
// They are applied beside the template, not through it: merging keeps every value the user set, and
// these are exactly values the user set. The originals go into the status record, so that a later
// pass (webhook reinvocation) starts from them instead of from its own rewrite.
type podEdits struct {
	probes      []probeEdit
	annotations map[string]string // added or replaced
	removed     []string          // annotation keys to delete
	origProbes  map[string]json.RawMessage
	origProm    map[string]string
}

func (e *podEdits) empty() bool {
	return len(e.probes) == 0 && len(e.annotations) == 0 && len(e.removed) == 0
}

// istioProfile is the config of the istio profile, parsed once.
type istioProfile struct {
	cfg         config.IstioProfile
	proxyConfig map[string]json.RawMessage
	// containers caches what a pod's first pass derives from its containers (names, ports, probe
	// rewrites), keyed by exactly those: the pods of one workload share them, and probe rewriting is
	// most of the profile's cost per pod.
	containers *boundedCache[string, containerFacts]
	// merged caches PROXY_CONFIG by discovery address for pods without proxy.istio.io/config.
	merged *boundedCache[string, string]
	// hold is the config's proxyConfig.holdApplicationUntilProxyStarts, as podFacts.hold.
	hold string
}

// containerFacts are the facts and edits that depend on the pod's containers alone.
type containerFacts struct {
	appContainers, podPorts, probers string
	edits                            []probeEdit
	orig                             map[string]json.RawMessage
}

func newIstioProfile(c config.IstioProfile) (*istioProfile, error) {
	pc, err := proxyconfig.FromMap(c.ProxyConfig)
	if err != nil {
		return nil, err
	}
	return &istioProfile{cfg: c, proxyConfig: pc, containers: newBoundedCache[string, containerFacts](maxCache),
		merged: newBoundedCache[string, string](64), hold: string(pc[holdField])}, nil
}

// facts derives the pod's facts and edits. Problems with the pod's Istio annotations are returned
// as field errors, for a denial that names them.
func (ip *istioProfile) facts(pod *PodView, ns Namespace, st *Status, ov Overrides) (podFacts, podEdits, field.ErrorList) {
	var f podFacts
	var errs field.ErrorList
	ours := statusOrEmpty(st)

	if rev, _ := revisionOf(pod, ns); rev != "" && len(validation.IsDNS1123Label(rev)) > 0 {
		errs = append(errs, field.Invalid(labelsPath.Key(LabelIstioRev), shorten(rev),
			"must be an istiod revision name (a DNS label such as canary or 1-31): the proxy connects to istiod-<revision>"))
	}
	// Settings pilot-agent would take from the pod's own annotations, which meshwarden's rendering
	// could not follow: refused, naming where the setting lives instead.
	for _, u := range unsupportedIstioAnnotations {
		if _, ok := pod.annotations[u.key]; ok {
			errs = append(errs, field.Forbidden(annotationsPath.Key(u.key), u.instead))
		}
	}
	f.discovery = ip.discoveryAddress(pod, ns)
	if v, ok := pod.annotations[AnnProxyConfig]; ok {
		overlay, err := proxyconfig.Parse([]byte(v))
		if err != nil {
			errs = append(errs, field.Invalid(annotationsPath.Key(AnnProxyConfig), shorten(v), proxyConfigMessage(err)))
		}
		errs = append(errs, proxyconfig.Check(annotationsPath.Key(AnnProxyConfig), overlay)...)
		f.proxyConfig, _ = proxyconfig.Merge(ip.baseProxyConfig(f.discovery), overlay)
		if h, ok := overlay[holdField]; ok {
			f.hold = string(h)
			if ov.HoldApplication != nil && strconv.FormatBool(*ov.HoldApplication) != f.hold {
				errs = append(errs, field.Invalid(annotationsPath.Key(AnnHoldApplication), strconv.FormatBool(*ov.HoldApplication),
					"contradicts holdApplicationUntilProxyStarts: "+f.hold+" in "+AnnProxyConfig+"; keep one of the two"))
			}
		}
	} else if pc, ok := ip.merged.get(f.discovery); ok {
		f.proxyConfig = pc
	} else {
		f.proxyConfig, _ = proxyconfig.Merge(ip.baseProxyConfig(f.discovery), nil)
		ip.merged.put(f.discovery, f.proxyConfig)
	}

	if f.hold == "" {
		f.hold = ip.hold
	}

	var e podEdits
	rewrite, err := ip.rewriteEnabled(pod.annotations, ov)
	if err != nil {
		errs = append(errs, err)
	}
	cf := ip.containerFacts(pod, st, rewrite)
	f.appContainers, f.podPorts, f.probers = cf.appContainers, cf.podPorts, cf.probers
	// Shared with the cache, read-only: the plan only reads them, and a capped slice cannot be appended into.
	e.probes, e.origProbes = cf.edits[:len(cf.edits):len(cf.edits)], cf.orig

	name, kind, apiVersion := workloadOf(pod)
	f.workloadName = name
	if wn := pod.labels["service.istio.io/workload-name"]; wn != "" {
		f.workloadName = wn // istiod's telemetry name for the workload, when the user gives one
	}
	if name != "" {
		f.owner = "kubernetes://apis/" + apiVersion + "/namespaces/" + ns.Name + "/" + strings.ToLower(kind) + "s/" + name
	}
	f.canonicalName = canonicalLabel(firstLabel(pod.labels, LabelCanonicalName, "app.kubernetes.io/name", "app"), name)
	f.canonicalRevision = canonicalLabel(firstLabel(pod.labels, LabelCanonicalRevision, "app.kubernetes.io/version", "version"), "latest")

	var perrs field.ErrorList
	f.prometheus, perrs = ip.prometheus(pod.annotations, ours, &e)
	errs = append(errs, perrs...)
	return f, e, errs
}

// baseProxyConfig is the config's ProxyConfig with istiod's address, unless the config sets one.
func (ip *istioProfile) baseProxyConfig(discovery string) map[string]json.RawMessage {
	if _, ok := ip.proxyConfig["discoveryAddress"]; ok {
		return ip.proxyConfig
	}
	return mergeRaw(ip.proxyConfig, map[string]json.RawMessage{"discoveryAddress": mustJSON(discovery)})
}

// discoveryAddress is istiod's address for this pod: the config's, or the pod's (then namespace's)
// istio.io/rev revision's istiod Service, as Istio names them.
func (ip *istioProfile) discoveryAddress(pod *PodView, ns Namespace) string {
	if ip.cfg.DiscoveryAddress != "" {
		return ip.cfg.DiscoveryAddress
	}
	rev, _ := revisionOf(pod, ns)
	svc := "istiod"
	if rev != "" && rev != "default" {
		svc += "-" + rev
	}
	return svc + "." + ip.cfg.SystemNamespace + ".svc:15012"
}

// rewriteEnabled says whether the pod's probes go through the agent: meshwarden's annotation, then
// Istio's, then the config.
func (ip *istioProfile) rewriteEnabled(ann map[string]string, ov Overrides) (bool, *field.Error) {
	if ov.RewriteAppProbers != nil {
		return *ov.RewriteAppProbers, nil
	}
	if v, ok := ann[AnnIstioRewriteProbers]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, field.Invalid(annotationsPath.Key(AnnIstioRewriteProbers), shorten(v), `must be "true" or "false"`)
		}
		return b, nil
	}
	return *ip.cfg.RewriteAppProbers, nil
}

// prometheus points the pod's prometheus.io annotations at the agent, which serves Envoy's, its own
// and the app's metrics merged; the app's own settings go to the agent in ISTIO_PROMETHEUS_ANNOTATIONS.
// A pod that says prometheus.io/scrape: "false", or turns merging off, keeps its annotations.
func (ip *istioProfile) prometheus(ann map[string]string, ours Status, e *podEdits) (string, field.ErrorList) {
	cur := map[string]string{}
	for _, k := range []string{annPromScrape, annPromPort, annPromPath} {
		if v, ok := ann[k]; ok {
			cur[k] = v
		}
	}
	agentPort := strconv.Itoa(AgentPort)
	orig := cur
	ourRewrite := cur[annPromPort] == agentPort && cur[annPromPath] == promPath && cur[annPromScrape] == "true"
	if ourRewrite && ours.Revision != "" {
		orig = ours.Prometheus // what the user had before the earlier pass, possibly nothing
	} else if cur[annPromPort] == agentPort {
		// Already scraped through the agent (a manifest copied from an Istio pod): left as it is.
		return "", nil
	}
	merge := *ip.cfg.PrometheusMerge
	if v, ok := ann[AnnIstioPromMerge]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", field.ErrorList{field.Invalid(annotationsPath.Key(AnnIstioPromMerge), shorten(v), `must be "true" or "false"`)}
		}
		merge = b
	}
	if s, err := strconv.ParseBool(orig[annPromScrape]); err == nil && !s {
		merge = false
	}
	want := orig
	if merge {
		if p, ok := orig[annPromPort]; ok {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return "", field.ErrorList{field.Invalid(annotationsPath.Key(annPromPort), shorten(p), "must be the app's metrics port, 1-65535")}
			}
			if agentPorts[n] {
				return "", field.ErrorList{field.Invalid(annotationsPath.Key(annPromPort), p,
					"is one of the proxy's own ports ("+agentPortList+"); the agent already serves the proxy's metrics merged on 15020")}
			}
		}
		want = map[string]string{annPromScrape: "true", annPromPort: agentPort, annPromPath: promPath}
		if len(orig) > 0 {
			e.origProm = orig
		}
	}
	for k, v := range want {
		if c, ok := ann[k]; !ok || c != v {
			if e.annotations == nil {
				e.annotations = map[string]string{}
			}
			e.annotations[k] = v
		}
	}
	for k := range cur {
		if _, ok := want[k]; !ok {
			e.removed = append(e.removed, k)
		}
	}
	if !merge || len(orig) == 0 {
		return "", nil
	}
	// The agent reads the keys without their prefix: {"path":"/metrics","port":"8080","scrape":"true"}.
	// Written directly, keys in encoding/json's sorted order: this runs for every scraped pod.
	b := make([]byte, 0, 64)
	b = append(b, '{')
	for _, k := range []string{annPromPath, annPromPort, annPromScrape} {
		if v, ok := orig[k]; ok {
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = appendString(b, strings.TrimPrefix(k, "prometheus.io/"))
			b = append(b, ':')
			b = appendString(b, v)
		}
	}
	return string(append(b, '}')), nil
}

// agentPorts are every port the istio proxy and agent listen on or reserve (pilot-agent refuses to
// scrape them and exits): none can be the app's metrics port.
var agentPorts = map[int]bool{AdminPort: true, OutboundPort: true, 15004: true, InboundPort: true, 15008: true,
	AgentPort: true, 15021: true, 15053: true, PromPort: true}

// agentPortList is agentPorts for messages, in order.
const agentPortList = "15000, 15001, 15004, 15006, 15008, 15020, 15021, 15053, 15090"

// unsupportedIstioAnnotations are Istio annotations that pilot-agent reads from the pod and that
// would contradict what meshwarden rendered (probe and metrics ports, istiod's address).
// A slice, not a map, so that the denial lists them in the same order every time.
var unsupportedIstioAnnotations = []struct{ key, instead string }{
	{"status.sidecar.istio.io/port", "the istio profile's agent listens on 15020 (probes and metrics are sent there); it cannot be moved"},
	{"sidecar.istio.io/discoveryAddress", "set the label istio.io/rev to pick an istiod revision, or injection.istio.discoveryAddress in meshwarden's config"},
}

const holdField = "holdApplicationUntilProxyStarts"

// revisionOf is the istiod revision the pod asks for: its istio.io/rev label, else its namespace's.
func revisionOf(pod *PodView, ns Namespace) (string, bool) {
	if rev, ok := pod.labels[LabelIstioRev]; ok {
		return rev, true
	}
	rev, ok := ns.Labels[LabelIstioRev]
	return rev, ok
}

// workloadOf names the workload that owns the pod, the way istiod labels its telemetry: a
// ReplicaSet made by a Deployment is reported as the Deployment, a Job made by a CronJob as the
// CronJob. A pod without a controller is its own workload.
func workloadOf(pod *PodView) (name, kind, apiVersion string) {
	name, kind, apiVersion = "", "Pod", "v1"
	var generateName string
	if m := pod.Metadata; m != nil {
		name, generateName = m.Name, m.GenerateName
		for _, ref := range m.OwnerReferences {
			if ref.Controller == nil || !*ref.Controller {
				continue
			}
			name, kind, apiVersion = ref.Name, ref.Kind, ref.APIVersion
			hash := pod.labels["pod-template-hash"]
			switch {
			case kind == "ReplicaSet" && hash != "" && strings.HasSuffix(name, "-"+hash):
				name, kind = strings.TrimSuffix(name, "-"+hash), "Deployment"
			case kind == "Job":
				if m := cronJobName.FindStringSubmatch(name); m != nil {
					name, kind, apiVersion = m[1], "CronJob", "batch/v1"
				}
			}
			break
		}
	}
	if name == "" {
		name = strings.TrimRight(generateName, "-")
	}
	return name, kind, apiVersion
}

// A CronJob names its Jobs <cronjob>-<scheduled time in minutes>.
var cronJobName = regexp.MustCompile(`^(.+)-\d{8,10}$`)

func firstLabel(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}

// canonicalLabel makes a valid label value: at most 63 characters, starting and ending alphanumeric.
func canonicalLabel(v, fallback string) string {
	if v == "" {
		v = fallback
	}
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-_.")
}

func statusOrEmpty(st *Status) Status {
	if st == nil {
		return Status{}
	}
	return *st
}

func mergeRaw(a, b map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func proxyConfigMessage(err error) string {
	if pe, ok := err.(*proxyconfig.Error); ok && pe.Unknown {
		return pe.Error() // it names the field and, when one is near, the field meant
	}
	return err.Error() + "; see Istio's ProxyConfig reference"
}
