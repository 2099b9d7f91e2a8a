package validate

import (
	"encoding/json"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshwarden/meshwarden/inject"
)

// workload denies a Deployment, StatefulSet, DaemonSet, Job, CronJob or ReplicaSet whose pod template
// carries an invalid meshwarden annotation, with the message its pods would get from /inject, so the
// user sees it at apply time instead of in a ReplicaSet's events.
func (h *Handler) workload(req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	annotations, path, err := templateAnnotations(req.Kind.Kind, req.Object.Raw)
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
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return admission.Denied(strings.Join(msgs, "; "))
}

// templateAnnotations returns the pod template's annotations and their field path; a nil path means the
// kind has no pod template (inject.PodTemplatePath says which kinds do, and where).
func templateAnnotations(kind string, raw []byte) (map[string]string, *field.Path, error) {
	path := inject.PodTemplatePath(kind)
	if len(path) == 0 {
		return nil, nil, nil // no template; a Pod itself is /inject's to check
	}
	cur := json.RawMessage(raw)
	for _, k := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			return nil, nil, err
		}
		if cur = m[k]; len(cur) == 0 || string(cur) == "null" {
			return nil, nil, nil
		}
	}
	var tmpl struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(cur, &tmpl); err != nil {
		return nil, nil, err
	}
	return tmpl.Metadata.Annotations, field.NewPath(path[0], path[1:]...).Child("metadata", "annotations"), nil
}
