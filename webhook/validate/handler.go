// Package validate is the /validate admission handler: the config guard's front at `kubectl apply`
// time. It checks Istio Gateways, VirtualServices and DestinationRules with package guard against the
// cluster as cached, warns about deleting a Gateway or Service that others still reference, and denies
// workloads whose pod template carries an invalid meshwarden annotation.
package validate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/go-logr/logr"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/load"
	"github.com/meshwarden/meshwarden/inject"
)

// ModeLabel is the namespace label that selects the guard mode: warn, deny or off.
const ModeLabel = "meshwarden.io/config-guard"

// MaxWarning is the longest admission warning sent; kubectl prints each on one line.
const MaxWarning = 119

// Handler answers /validate.
type Handler struct {
	// Cache reads the cluster as the manager's cache sees it.
	Cache client.Reader
	// API reads the API server directly; a miss in the cache is confirmed here before a denial, since
	// the cache can be milliseconds behind an object created by the same `kubectl apply`.
	API         client.Reader
	Options     guard.Options
	DefaultMode config.GuardMode
	// Injector decides whether a workload's pods would be injected: only then do its pod template's
	// annotations matter. Nil (tests of config only) treats every workload as injected.
	Injector *inject.Injector
	Log      logr.Logger
}

var _ admission.Handler = (*Handler)(nil)

// Handle decides one request. Dry-run requests take exactly the same path: a dry run must predict.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	log := h.Log.WithValues("kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name, "operation", req.Operation, "uid", req.UID)
	mode, nsLabels, err := h.namespace(ctx, req.Namespace)
	if err != nil {
		log.Error(err, "reading the namespace's guard mode")
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %q: %w", req.Namespace, err))
	}
	if mode == config.GuardOff {
		return admission.Allowed("")
	}
	switch req.Kind.Group {
	case "apps", "batch":
		return h.workload(ctx, req, mode, nsLabels)
	case "networking.istio.io":
		if req.Operation == admissionv1.Delete {
			return h.deleted(ctx, log, req)
		}
		return h.config(ctx, log, req, mode)
	case "":
		if req.Kind.Kind == "Service" && req.Operation == admissionv1.Delete {
			return h.deleted(ctx, log, req)
		}
	}
	return admission.Allowed("")
}

// namespace returns the namespace's guard mode (its label, else the configured default) and its
// labels. A cluster-scoped request has neither.
func (h *Handler) namespace(ctx context.Context, ns string) (config.GuardMode, map[string]string, error) {
	if ns == "" {
		return h.DefaultMode, nil, nil
	}
	var n corev1.Namespace
	if err := h.Cache.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
		if apierrors.IsNotFound(err) {
			return h.DefaultMode, nil, nil
		}
		return "", nil, err
	}
	switch m := config.GuardMode(n.Labels[ModeLabel]); m {
	case config.GuardWarn, config.GuardDeny, config.GuardOff:
		return m, n.Labels, nil
	}
	return h.DefaultMode, n.Labels, nil
}

// config checks a Gateway, VirtualService or DestinationRule being created or updated.
func (h *Handler) config(ctx context.Context, log logr.Logger, req admission.Request, mode config.GuardMode) admission.Response {
	obj, err := decodeIstio(req.Kind.Kind, req.Object.Raw, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if obj == nil {
		return admission.Allowed("") // ServiceEntry: nothing of its own to check
	}
	var old any
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err = decodeIstio(req.Kind.Kind, req.OldObject.Raw, req.Namespace); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
	}
	findings, introduced, err := h.evaluate(ctx, h.Cache, obj, old)
	if err != nil {
		log.Error(err, "reading the cluster from the cache")
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if mode == config.GuardDeny && guard.HasErrors(introduced) {
		// Confirm against the API server before saying no.
		if findings, introduced, err = h.evaluate(ctx, h.API, obj, old); err != nil {
			log.Error(err, "confirming findings with an uncached read")
			return admission.Errored(http.StatusInternalServerError, err)
		}
		if guard.HasErrors(introduced) {
			log.Info("denied", "findings", len(introduced))
			return denied(introduced)
		}
	}
	return admission.Allowed("").WithWarnings(warnings(findings)...)
}

// evaluate returns the object's findings and those of them its previous version did not have.
func (h *Handler) evaluate(ctx context.Context, r client.Reader, obj, old any) (all, introduced []guard.Finding, err error) {
	l := load.New("")
	_, l.SkipWorkloads = obj.(*networking.VirtualService)
	var opts []client.ListOption
	if r == h.Cache {
		opts = append(opts, client.UnsafeDisableDeepCopy) // the snapshot only reads
	}
	if err := l.AddCluster(ctx, r, opts...); err != nil {
		return nil, nil, err
	}
	l.AddObject(obj)
	snap := l.Snapshot()
	all = guard.CheckObject(snap, h.Options, obj)
	if old == nil {
		return all, all, nil
	}
	before := map[string]bool{}
	for _, f := range guard.CheckObject(snap, h.Options, old) {
		before[f.Key()] = true
	}
	for _, f := range all {
		if !before[f.Key()] {
			introduced = append(introduced, f)
		}
	}
	return all, introduced, nil
}

// deleted warns when a Gateway or Service that others reference is deleted; it never denies, since
// deleting is how one replaces an object.
func (h *Handler) deleted(ctx context.Context, log logr.Logger, req admission.Request) admission.Response {
	var target any
	switch req.Kind.Kind {
	case "Gateway":
		target = &networking.Gateway{}
	case "Service":
		target = &corev1.Service{}
	default:
		return admission.Allowed("")
	}
	// The name and namespace come from the request: oldObject may be absent on old API servers.
	switch t := target.(type) {
	case *networking.Gateway:
		t.Name, t.Namespace = req.Name, req.Namespace
	case *corev1.Service:
		t.Name, t.Namespace = req.Name, req.Namespace
	}
	l := load.New("")
	l.SkipWorkloads = true // dependents are VirtualServices and DestinationRules
	if err := l.AddCluster(ctx, h.Cache, client.UnsafeDisableDeepCopy); err != nil {
		log.Error(err, "reading the cluster from the cache")
		return admission.Allowed("").WithWarnings("meshwarden could not list the objects that reference this one")
	}
	deps := guard.Dependents(l.Snapshot(), h.Options, target)
	if len(deps) == 0 {
		return admission.Allowed("")
	}
	return admission.Allowed("").WithWarnings(dependentsWarning(req.Kind.Kind, req.Namespace, req.Name, deps))
}

// dependentsWarning names the dependents, those in the target's namespace by name only, as many as fit
// in one warning line.
func dependentsWarning(kind, ns, name string, deps []guard.Resource) string {
	head := fmt.Sprintf("%s %s is still referenced by ", kind, name)
	out := head
	for i, d := range deps {
		p := d.Kind + " " + d.Name
		if d.Namespace != ns {
			p = d.String()
		}
		if i > 0 {
			p = ", " + p
		}
		more := ""
		if rest := len(deps) - i - 1; rest > 0 {
			more = fmt.Sprintf(" and %d more", rest)
		}
		if i > 0 && utf8.RuneCountInString(out+p+more) > MaxWarning {
			return out + fmt.Sprintf(" and %d more", len(deps)-i)
		}
		out += p
	}
	return truncate(out, MaxWarning)
}

// decodeIstio reads any served version (v1, v1beta1, v1alpha3: the same schema) into the v1 type.
func decodeIstio(kind string, raw []byte, ns string) (any, error) {
	var obj interface{ SetNamespace(string) }
	switch kind {
	case "VirtualService":
		obj = &networking.VirtualService{}
	case "DestinationRule":
		obj = &networking.DestinationRule{}
	case "Gateway":
		obj = &networking.Gateway{}
	default:
		return nil, nil
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, fmt.Errorf("decoding the %s: %w", kind, err)
	}
	if ns != "" {
		obj.SetNamespace(ns) // a CREATE may omit metadata.namespace; the request carries it
	}
	return obj, nil
}

// warnings are one line each, under kubectl's comfortable width.
func warnings(fs []guard.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, truncate(f.Short(), MaxWarning))
	}
	return out
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// denied lists every introduced finding with its field path.
func denied(fs []guard.Finding) admission.Response {
	msgs := make([]string, len(fs))
	for i, f := range fs {
		msgs[i] = f.Short()
	}
	return admission.Denied("meshwarden config guard: " + strings.Join(msgs, "; "))
}
