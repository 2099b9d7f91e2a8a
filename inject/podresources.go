package inject

import (
	"encoding/json"
	"slices"

	"k8s.io/apimachinery/pkg/api/resource"
)

// A pod with pod-level resources (spec.resources) must keep them at least the sum of its containers'
// (the API server refuses it otherwise: "must be greater than or equal to aggregate container
// requests"), and a container's limit may not exceed the pod's. So the proxies meshwarden adds
// (containers, and native-sidecar init containers, which run beside the app) add their requests and
// limits to the pod's, for each resource the pod sets. The one-shot meshwarden-init runs alone, and its
// requests are far below any proxy's. The user's own values go into the status record, so that a later
// pass adds to those, never to its own sum.

// podResources is spec.resources as far as injection reads it.
type podResources struct {
	Requests map[string]resource.Quantity `json:"requests,omitempty"`
	Limits   map[string]resource.Quantity `json:"limits,omitempty"`
}

// podResourcesEdit returns spec.resources with the rendered proxies' added, and the user's original
// for the status record; ok is false when the pod sets no pod-level resources.
func podResourcesEdit(cur, orig json.RawMessage, r *rendered) (want, user json.RawMessage, ok bool) {
	user = cur
	if orig != nil {
		user = orig // an earlier pass added to these: start again from the user's
	}
	if !present(user) {
		return nil, nil, false
	}
	var base podResources
	if json.Unmarshal(user, &base) != nil || (len(base.Requests) == 0 && len(base.Limits) == 0) {
		return nil, nil, false
	}
	for _, pc := range slices.Concat(r.initContainers, r.containers) {
		var c struct {
			RestartPolicy string       `json:"restartPolicy"`
			Resources     podResources `json:"resources"`
		}
		if json.Unmarshal(pc.raw, &c) != nil {
			continue
		}
		if indexOfPiece(r.initContainers, pc.name) >= 0 && c.RestartPolicy != "Always" {
			continue // a one-shot init container: it runs before the others, alone
		}
		addTo(base.Requests, c.Resources.Requests)
		addTo(base.Limits, c.Resources.Limits)
	}
	// The user's document with the two maps replaced: any other field of spec.resources is kept.
	var doc map[string]json.RawMessage
	if json.Unmarshal(user, &doc) != nil {
		return nil, nil, false
	}
	if len(base.Requests) > 0 {
		doc["requests"] = mustJSON(base.Requests)
	}
	if len(base.Limits) > 0 {
		doc["limits"] = mustJSON(base.Limits)
	}
	return mustJSON(doc), user, true
}

// addTo adds each quantity of add to the same resource in sum, for the resources sum already has.
func addTo(sum, add map[string]resource.Quantity) {
	for name, q := range add {
		if have, ok := sum[name]; ok {
			have.Add(q)
			sum[name] = have
		}
	}
}

func indexOfPiece(pieces []piece, name string) int {
	for i, p := range pieces {
		if p.name == name {
			return i
		}
	}
	return -1
}
