package inject

import (
	"encoding/json"
	"fmt"
	"slices"

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
		HostNetwork bool `json:"hostNetwork"`
		// OS, NodeSelector and Affinity tell a Windows pod (decide.go); the affinity stays raw, as
		// only pods that have one pay for reading it.
		OS *struct {
			Name string `json:"name"`
		} `json:"os"`
		NodeSelector map[string]string `json:"nodeSelector"`
		// Resources are the pod-level resources, raw (podresources.go).
		Resources      json.RawMessage `json:"resources"`
		Affinity       json.RawMessage `json:"affinity"`
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

const labelOS = "kubernetes.io/os"

// windows is true for a pod that can only run on a Windows node: spec.os.name, a node selector, or a
// required node affinity whose every term asks for kubernetes.io/os In [windows].
func (p *PodView) windows() bool {
	if p.Spec.OS != nil && p.Spec.OS.Name == "windows" {
		return true
	}
	if p.Spec.NodeSelector[labelOS] == "windows" {
		return true
	}
	if len(p.Spec.Affinity) == 0 {
		return false
	}
	var a struct {
		NodeAffinity *struct {
			Required *struct {
				Terms []struct {
					Expressions []struct {
						Key      string   `json:"key"`
						Operator string   `json:"operator"`
						Values   []string `json:"values"`
					} `json:"matchExpressions"`
				} `json:"nodeSelectorTerms"`
			} `json:"requiredDuringSchedulingIgnoredDuringExecution"`
		} `json:"nodeAffinity"`
	}
	if json.Unmarshal(p.Spec.Affinity, &a) != nil || a.NodeAffinity == nil || a.NodeAffinity.Required == nil || len(a.NodeAffinity.Required.Terms) == 0 {
		return false
	}
	// Terms are ORed: the pod is Windows-only when each term alone requires Windows.
	for _, t := range a.NodeAffinity.Required.Terms {
		only := false
		for _, e := range t.Expressions {
			if e.Key == labelOS && e.Operator == "In" && len(e.Values) > 0 && !slices.ContainsFunc(e.Values, func(v string) bool { return v != "windows" }) {
				only = true
			}
		}
		if !only {
			return false
		}
	}
	return true
}
