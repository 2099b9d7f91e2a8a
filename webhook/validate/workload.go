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

type templateMeta struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// templateAnnotations returns the pod template's annotations and their field path; a nil path means the
// kind has no pod template we know.
func templateAnnotations(kind string, raw []byte) (map[string]string, *field.Path, error) {
	var obj struct {
		Spec struct {
			Template    *templateMeta `json:"template"`
			JobTemplate *struct {
				Spec struct {
					Template *templateMeta `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, nil, err
	}
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		if obj.Spec.Template == nil {
			return nil, nil, nil
		}
		return obj.Spec.Template.Metadata.Annotations, field.NewPath("spec", "template", "metadata", "annotations"), nil
	case "CronJob":
		if obj.Spec.JobTemplate == nil || obj.Spec.JobTemplate.Spec.Template == nil {
			return nil, nil, nil
		}
		return obj.Spec.JobTemplate.Spec.Template.Metadata.Annotations,
			field.NewPath("spec", "jobTemplate", "spec", "template", "metadata", "annotations"), nil
	}
	return nil, nil, nil
}
