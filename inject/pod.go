package inject

import (
	"fmt"

	kjson "sigs.k8s.io/json"
)

// PodView is the part of a pod that injection reads. Callers that decode the pod's envelope (the
// webhook's AdmissionReview) can decode the pod straight into a PodView in the same pass. Decoding only this keeps the hot path cheap (a pod
// with thousands of env vars costs one scan, not thousands of allocations) and leaves everything else
// in the user's bytes untouched: the patch is planned against positions, never re-serialised objects.
type PodView struct {
	Metadata *struct {
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork    bool        `json:"hostNetwork"`
		InitContainers []namedItem `json:"initContainers"`
		Containers     []namedItem `json:"containers"`
		Volumes        []namedItem `json:"volumes"`
	} `json:"spec"`
	// Whether each map and list exists: adding into a missing one needs a different operation. The
	// decoder leaves a field nil when it is absent or null (for both, "add" of the whole value is
	// right) and non-nil for {} or [].
	hasMetadata, hasAnnotations, hasLabels, hasInit, hasVolumes bool
	labels, annotations                                         map[string]string
	namespace                                                   string
}

type namedItem struct {
	Name string `json:"name"`
}

func decodePod(raw []byte) (*PodView, error) {
	p := &PodView{}
	// Case-sensitive, as the API server decodes: "Spec" is not "spec".
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, p); err != nil {
		return nil, fmt.Errorf("the object is not a pod in JSON: %w", err)
	}
	p.prepare()
	return p, nil
}

// prepare derives what the plan needs from the decoded fields.
func (p *PodView) prepare() {
	if m := p.Metadata; m != nil {
		p.hasMetadata = true
		p.labels, p.annotations, p.namespace = m.Labels, m.Annotations, m.Namespace
		p.hasLabels, p.hasAnnotations = m.Labels != nil, m.Annotations != nil
	}
	p.hasInit = p.Spec.InitContainers != nil
	p.hasVolumes = p.Spec.Volumes != nil
}

func indexOf(items []namedItem, name string) int {
	for i, it := range items {
		if it.Name == name {
			return i
		}
	}
	return -1
}
