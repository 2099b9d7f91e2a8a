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
