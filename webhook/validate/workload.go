package validate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/inject"
)

// workload answers for a Deployment, StatefulSet, DaemonSet, Job, CronJob or ReplicaSet whose pod
// template carries an invalid meshwarden annotation, with the message its pods would get from /inject,
// so the user sees it at apply time instead of in a ReplicaSet's events. Only where its pods would be
// injected (the injector's own decision): denied in deny mode, a warning in warn mode.
func (h *Handler) workload(ctx context.Context, req admission.Request, mode config.GuardMode, nsLabels map[string]string) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	tmpl, annotations, path, err := podTemplate(req.Kind.Kind, req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if path == nil {
		return admission.Allowed("")
	}
	errs := inject.ValidateAnnotations(annotations, path)
	if len(errs) == 0 {
		return admission.Allowed("")
	}
	if h.Injector != nil {
		// A pod template is a pod's metadata and spec: the decision reads it as the pod.
		injected, _, err := h.Injector.Decide(tmpl, inject.Namespace{Name: req.Namespace, Labels: nsLabels})
		if err != nil || !injected {
			return admission.Allowed("")
		}
	}
	if mode == config.GuardDeny {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return admission.Denied(strings.Join(msgs, "; "))
	}
	warns := make([]string, len(errs))
	for i, e := range errs {
		warns[i] = annotationWarning(e)
	}
	return admission.Allowed("").WithWarnings(warns...)
}

// annotationWarning says what is wrong with one annotation in a line kubectl prints whole (at most
// MaxWarning characters): the full field path of a denial would not fit.
func annotationWarning(e *field.Error) string {
	key := e.Field
	if i := strings.LastIndex(key, "["); i >= 0 && strings.HasSuffix(key, "]") {
		key = key[i+1 : len(key)-1]
	}
	msg := "pod template annotation " + key
	if v, ok := e.BadValue.(string); ok && v != "" {
		msg += fmt.Sprintf("=%q", v)
	}
	detail := e.Detail
	if detail == "" {
		detail = e.Type.String()
	}
	return truncate(msg+": "+detail, MaxWarning)
}

// podTemplate returns the pod template (raw), its annotations and their field path; a nil path means
// the kind has no pod template (inject.PodTemplatePath says which kinds do, and where).
func podTemplate(kind string, raw []byte) (json.RawMessage, map[string]string, *field.Path, error) {
	path := inject.PodTemplatePath(kind)
	if len(path) == 0 {
		return nil, nil, nil, nil // no template; a Pod itself is /inject's to check
	}
	cur := json.RawMessage(raw)
	for _, k := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, nil, nil, err
		}
		if cur = m[k]; len(cur) == 0 || string(cur) == "null" {
			return nil, nil, nil, nil
		}
	}
	var tmpl struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(cur, &tmpl); err != nil {
		return nil, nil, nil, err
	}
	return cur, tmpl.Metadata.Annotations, field.NewPath(path[0], path[1:]...).Child("metadata", "annotations"), nil
}
