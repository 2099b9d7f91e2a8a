package inject

import "encoding/json"

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
