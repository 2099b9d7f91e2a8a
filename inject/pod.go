package inject

import (
	"encoding/json"
	"fmt"

	kjson "sigs.k8s.io/json"
)

// podView is the part of a pod that injection reads. Decoding only this keeps the hot path cheap (a pod
// with thousands of env vars costs one scan, not thousands of allocations) and leaves everything else
// in the user's bytes untouched: the patch is planned against positions, never re-serialised objects.
type podView struct {
	Metadata struct {
		Name         string            `json:"name"`
		GenerateName string            `json:"generateName"`
		Namespace    string            `json:"namespace"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		HostNetwork    bool        `json:"hostNetwork"`
		InitContainers []namedItem `json:"initContainers"`
		Containers     []namedItem `json:"containers"`
		Volumes        []namedItem `json:"volumes"`
	} `json:"spec"`
	hasMetadata, hasAnnotations, hasLabels, hasInit, hasVolumes bool
}

type namedItem struct {
	Name string `json:"name"`
}

// presence records which maps and lists exist at all: adding to a missing one needs a different op.
type presence struct {
	Metadata struct {
		Labels      json.RawMessage `json:"labels"`
		Annotations json.RawMessage `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		InitContainers json.RawMessage `json:"initContainers"`
		Volumes        json.RawMessage `json:"volumes"`
	} `json:"spec"`
}

func decodePod(raw []byte) (*podView, error) {
	p := &podView{}
	// Case-sensitive, as the API server decodes: "Spec" is not "spec".
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, p); err != nil {
		return nil, fmt.Errorf("the object is not a pod in JSON: %w", err)
	}
	p.hasAnnotations = p.Metadata.Annotations != nil
	p.hasLabels = p.Metadata.Labels != nil
	p.hasInit = p.Spec.InitContainers != nil
	p.hasVolumes = p.Spec.Volumes != nil
	// null and {} both decode to a nil/empty map; an explicit null must be replaced, not added into.
	p.hasMetadata = true
	if !p.hasAnnotations || !p.hasLabels || !p.hasInit || !p.hasVolumes {
		var pr presence
		_ = kjson.UnmarshalCaseSensitivePreserveInts(raw, &pr)
		var top struct {
			Metadata json.RawMessage `json:"metadata"`
		}
		_ = kjson.UnmarshalCaseSensitivePreserveInts(raw, &top)
		p.hasMetadata = isContainer(top.Metadata)
		p.hasAnnotations = isContainer(pr.Metadata.Annotations)
		p.hasLabels = isContainer(pr.Metadata.Labels)
		p.hasInit = isContainer(pr.Spec.InitContainers)
		p.hasVolumes = isContainer(pr.Spec.Volumes)
	}
	return p, nil
}

func isContainer(m json.RawMessage) bool {
	return len(m) > 0 && (m[0] == '{' || m[0] == '[')
}

func indexOf(items []namedItem, name string) int {
	for i, it := range items {
		if it.Name == name {
			return i
		}
	}
	return -1
}
