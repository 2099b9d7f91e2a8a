package inject

import (
	"encoding/json"
	"maps"
	"slices"
)

// Status is the value of the sidecar.meshwarden.io/status annotation: what meshwarden added, so that a
// later pass (webhook reinvocation, `meshwarden inject` on its own output) removes exactly that and
// renders again, which makes injection idempotent.
type Status struct {
	InitContainers []string `json:"initContainers,omitempty"`
	Containers     []string `json:"containers,omitempty"`
	Volumes        []string `json:"volumes,omitempty"`
	Templates      []string `json:"templates"`
	Revision       string   `json:"revision"`
	// Probes are the user's probes that the istio profile sent through the agent, by
	// "<container>/<field>", and Prometheus the prometheus.io annotations it pointed at the agent:
	// a later pass rewrites from these, never from its own output.
	Probes     map[string]json.RawMessage `json:"probes,omitempty"`
	Prometheus map[string]string          `json:"prometheus,omitempty"`
	// PodResources is the pod's spec.resources before meshwarden added its proxies to it.
	PodResources json.RawMessage `json:"podResources,omitempty"`
}

func parseStatus(v string) (*Status, bool) {
	if v == "" {
		return nil, false
	}
	var s Status
	if json.Unmarshal([]byte(v), &s) != nil {
		return nil, false
	}
	return &s, true
}

// marshal is json.Marshal(s), byte for byte, without reflection: it runs for every injected pod.
// A probe whose JSON would need encoding/json's compaction or escaping (whitespace, <, >, &,
// non-ASCII) sends the whole record through json.Marshal instead.
func (s *Status) marshal() []byte {
	raws := slices.Collect(maps.Values(s.Probes))
	if s.PodResources != nil {
		raws = append(raws, s.PodResources)
	}
	for _, raw := range raws {
		if len(raw) == 0 || !json.Valid(raw) {
			b, _ := json.Marshal(s) // nil, or not JSON (never from the decoder): encoding/json's answer
			return b
		}
		for _, c := range raw {
			if c <= ' ' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
				b, _ := json.Marshal(s) // a Status always marshals
				return b
			}
		}
	}
	b := make([]byte, 0, 256)
	b = append(b, '{')
	list := func(key string, v []string, omitEmpty bool) {
		if omitEmpty && len(v) == 0 {
			return
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendString(b, key)
		if v == nil {
			b = append(b, ":null"...)
			return
		}
		b = append(b, ':', '[')
		for i, n := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, n)
		}
		b = append(b, ']')
	}
	list("initContainers", s.InitContainers, true)
	list("containers", s.Containers, true)
	list("volumes", s.Volumes, true)
	list("templates", s.Templates, false)
	b = append(b, `,"revision":`...)
	b = appendString(b, s.Revision)
	b = appendObject(b, "probes", s.Probes, func(b []byte, v json.RawMessage) []byte { return append(b, v...) })
	b = appendObject(b, "prometheus", s.Prometheus, appendString)
	if s.PodResources != nil {
		b = append(b, `,"podResources":`...)
		b = append(b, s.PodResources...)
	}
	return append(b, '}')
}

// appendObject appends `,"key":{...}` with m's entries in key order (encoding/json's), each value
// written by value; nothing for an empty m (omitempty).
func appendObject[V any](b []byte, key string, m map[string]V, value func([]byte, V) []byte) []byte {
	if len(m) == 0 {
		return b
	}
	b = append(appendString(append(b, ','), key), ':', '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = value(append(appendString(b, k), ':'), m[k])
	}
	return append(b, '}')
}
