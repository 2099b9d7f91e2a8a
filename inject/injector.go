package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/templates"
)

// TemplateSource gives the template set in force; the watcher swaps it when the directory changes.
type TemplateSource interface {
	Current() *templates.Set
}

// StaticTemplates is a TemplateSource that never changes.
type StaticTemplates struct{ Set *templates.Set }

// Current returns the set.
func (s StaticTemplates) Current() *templates.Set { return s.Set }

// Injector injects pods. It is safe for concurrent use; per-request state lives on the stack.
type Injector struct {
	cfg       *config.Config
	sel       selectors
	templates TemplateSource
	// istio is the istio profile's parsed config; nil in the envoy profile.
	istio *istioProfile

	cache *boundedCache[cacheKey, *rendered]
}

type cacheKey struct {
	revision string
	s        settings
}

// maxCache bounds the render cache; distinct settings are few in practice (one per override combination).
const maxCache = 4096

// New builds an injector from a validated config.
func New(cfg *config.Config, src TemplateSource) (*Injector, error) {
	sel, err := compileSelectors(cfg.Injection)
	if err != nil {
		return nil, err
	}
	in := &Injector{cfg: cfg, sel: sel, templates: src, cache: newBoundedCache[cacheKey, *rendered](maxCache)}
	if cfg.Injection.Profile == config.ProfileIstio {
		if in.istio, err = newIstioProfile(cfg.Injection.Istio); err != nil {
			return nil, fmt.Errorf("injection.istio.proxyConfig: %w", err)
		}
	}
	return in, nil
}

// Request is one pod to inject.
type Request struct {
	// Pod is the pod as JSON, exactly as received.
	Pod []byte
	// View, when set, is the pod already decoded (in the same pass as its envelope); Pod may then be
	// nil, and LoadPod gives the bytes in the rare cases they are needed (a template that reads the
	// pod, or merges into a user container).
	View    *PodView
	LoadPod func() ([]byte, error)
	// Namespace is the pod's namespace; at admission a controller-made pod's metadata may lack it.
	Namespace Namespace
}

// Result is the outcome for one pod: exactly one of injected (with a patch, empty when the pod is
// already injected as it would be now), skipped, or denied.
type Result struct {
	Injected bool
	Reason   Reason
	// Patch holds the operations to apply to Request.Pod.
	Patch []jsonpatch.Operation
	// Denied lists why the pod is refused, each error naming its field.
	Denied field.ErrorList
}

// ErrNotAPod is returned when the bytes do not decode as a pod.
var ErrNotAPod = errors.New("not a pod")

var (
	annotationsPath = field.NewPath("metadata", "annotations")
	labelsPath      = field.NewPath("metadata", "labels")
)

// Inject decides, renders and plans the patch for one pod. The error is for input that is not a pod
// at all; everything about a valid pod, including denial, is in the Result.
func (in *Injector) Inject(req Request) (Result, error) {
	pod := req.View
	if pod != nil {
		pod.prepare()
	} else {
		var err error
		if pod, err = decodePod(req.Pod); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrNotAPod, err)
		}
	}
	raw := req.raw
	ov, errs := ParseAnnotations(pod.annotations, annotationsPath)
	if v, ok := pod.labels[LabelInject]; ok && v != "true" && v != "false" {
		errs = append(errs, field.NotSupported(labelsPath.Key(LabelInject), v, []string{"true", "false"}))
	}
	status, _ := parseStatus(pod.annotations[AnnotationStatus])
	if req.Namespace.Name == "" {
		req.Namespace.Name = pod.namespace
	}

	inject, reason := in.decide(pod, req.Namespace, ov, status)
	if !inject {
		return Result{Reason: reason}, nil
	}
	s := settingsFor(in.cfg.Injection, ov)
	var edits podEdits
	if in.istio != nil {
		var ierrs field.ErrorList
		s.facts, edits, ierrs = in.istio.facts(pod, req.Namespace, status, ov)
		if ov.HoldApplication == nil && s.facts.hold != "" {
			s.hold = s.facts.hold == "true" // Istio's own setting, from the pod's or the config's ProxyConfig
		}
		if ov.StatusPort != 0 {
			ierrs = append(ierrs, field.Forbidden(annotationsPath.Key(AnnStatusPort),
				"applies to the envoy profile; the istio profile's ports are Istio's (15020 for the agent, 15021 for health)"))
		}
		if s.interception == "TPROXY" {
			ierrs = append(ierrs, field.NotSupported(annotationsPath.Key(AnnInterception), s.interception, []string{"REDIRECT", "NONE"}))
		}
		errs = append(errs, ierrs...)
	}
	errs = append(errs, in.otherProfileTemplates(ov.Templates)...)
	if len(errs) > 0 {
		return Result{Reason: DenyInvalidAnnotation, Denied: errs}, nil
	}

	r, err := in.render(s, raw)
	if err != nil {
		return deny(err), nil
	}
	if status != nil && status.Revision == r.revision && stillPresent(pod, status) && edits.empty() {
		return Result{Injected: true, Reason: reason}, nil // already injected exactly so
	}
	ops, _, err := planPatch(raw, pod, status, r, s, &edits)
	if err != nil {
		return deny(err), nil
	}
	return Result{Injected: true, Reason: reason, Patch: ops}, nil
}

func deny(err error) Result {
	var unknown *unknownTemplateError
	var conflict *conflictError
	switch {
	case errors.As(err, &unknown):
		return Result{Reason: DenyUnknownTemplate, Denied: field.ErrorList{field.Invalid(annotationsPath.Key(AnnTemplates), unknown.name, err.Error())}}
	case errors.As(err, &conflict):
		return Result{Reason: DenyConflict, Denied: field.ErrorList{field.Forbidden(field.NewPath("spec"), err.Error())}}
	default:
		return Result{Reason: DenyRender, Denied: field.ErrorList{field.InternalError(field.NewPath("spec"), err)}}
	}
}

// render returns the rendering for the settings, from the cache unless a template reads the pod.
// raw returns the pod's bytes, loading them if the request came pre-decoded.
func (r Request) raw() ([]byte, error) {
	if r.Pod != nil || r.LoadPod == nil {
		return r.Pod, nil
	}
	return r.LoadPod()
}

func (in *Injector) render(s settings, raw func() ([]byte, error)) (*rendered, error) {
	set := in.templates.Current()
	names := strings.Split(s.templates, ",")
	usesPod := false
	for _, n := range names {
		if t, ok := set.Get(n); ok && t.UsesPod {
			usesPod = true
		}
	}
	if usesPod {
		b, err := raw()
		if err != nil {
			return nil, err
		}
		var pod corev1.Pod
		if err := json.Unmarshal(b, &pod); err != nil {
			return nil, err
		}
		return render(set, names, s.values(in.cfg.Injection), &pod)
	}
	// Facts too large to keep are rendered each time: a few odd pods must not fill the cache.
	cacheable := s.facts.cacheable()
	key := cacheKey{revision: set.Revision, s: s}
	if cacheable {
		if r, ok := in.cache.get(key); ok {
			return r, nil
		}
	}
	r, err := render(set, names, s.values(in.cfg.Injection), nil)
	if err != nil || !cacheable {
		return r, err
	}
	in.cache.put(key, r)
	return r, nil
}

// stillPresent is true when everything the status lists is still in the pod.
func stillPresent(pod *PodView, st *Status) bool {
	return allPresent(pod.Spec.InitContainers, st.InitContainers) && allPresent(pod.Spec.Containers, st.Containers) &&
		allPresent(pod.Spec.Volumes, st.Volumes)
}

// allPresent is true when every name is an item's: linear in both, as the names are the user's to write.
func allPresent[T named](items []T, names []string) bool {
	if len(names) == 0 {
		return true
	}
	have := make(map[string]bool, len(items))
	for _, it := range items {
		have[it.itemName()] = true
	}
	for _, n := range names {
		if !have[n] {
			return false
		}
	}
	return true
}

// otherProfileTemplates refuses a pod that names the other profile's built-in template: rendered with
// this profile's values it would be a proxy with nothing to connect to.
func (in *Injector) otherProfileTemplates(names []string) field.ErrorList {
	this := in.cfg.Injection.Profile
	other := config.ProfileEnvoy
	if this == config.ProfileEnvoy {
		other = config.ProfileIstio
	}
	for _, n := range names {
		if n == config.DefaultTemplate(other) {
			return field.ErrorList{field.Invalid(annotationsPath.Key(AnnTemplates), strings.Join(names, ","),
				fmt.Sprintf("template %q belongs to the %s profile, and meshwarden runs the %s profile (injection.profile); use %q",
					n, other, this, config.DefaultTemplate(this)))}
		}
	}
	return nil
}
