package inject

import (
	"encoding/json"
	"fmt"

	kjson "sigs.k8s.io/json"
)

// PodView is the part of a pod that injection reads. Callers that decode the pod's envelope (the
// webhook's AdmissionReview) can decode the pod straight into a PodView in the same pass. Decoding only this keeps the hot path cheap (a pod
// with thousands of env vars costs one scan, not thousands of allocations) and leaves everything else
// in the user's bytes untouched: the patch is planned against positions, never re-serialised objects.
type PodView struct {
	Metadata *struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		// OwnerReferences name the workload, for the istio profile's node metadata.
		OwnerReferences []ownerRef `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork    bool            `json:"hostNetwork"`
		InitContainers []containerItem `json:"initContainers"`
		Containers     []containerItem `json:"containers"`
		Volumes        []namedItem     `json:"volumes"`
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

// containerItem is what injection reads of a container. Probes stay raw: they are copied into the
// prober table or replaced whole, never edited field by field, and raw costs one scan to skip.
type containerItem struct {
	Name           string          `json:"name"`
	Ports          []containerPort `json:"ports"`
	ReadinessProbe json.RawMessage `json:"readinessProbe"`
	LivenessProbe  json.RawMessage `json:"livenessProbe"`
	StartupProbe   json.RawMessage `json:"startupProbe"`
	Lifecycle      struct {
		PreStop   json.RawMessage `json:"preStop"`
		PostStart json.RawMessage `json:"postStart"`
	} `json:"lifecycle"`
}

type containerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

type ownerRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Controller *bool  `json:"controller"`
}

// named is a list item that has a name: the lists a pod's patch positions are computed on.
type named interface{ itemName() string }

func (n namedItem) itemName() string     { return n.Name }
func (c containerItem) itemName() string { return c.Name }

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

func indexOf[T named](items []T, name string) int {
	for i, it := range items {
		if it.itemName() == name {
			return i
		}
	}
	return -1
}
