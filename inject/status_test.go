package inject

import (
	"encoding/json"
	"testing"
)

// TestStatusMarshalIsJSONMarshal: the hand-written encoding is encoding/json's, byte for byte, on
// every shape the record takes, including probes that need compaction or escaping.
func TestStatusMarshalIsJSONMarshal(t *testing.T) {
	cases := map[string]Status{
		"empty":      {},
		"templates":  {Templates: []string{"istio"}, Revision: "abc"},
		"empty list": {Templates: []string{}, Containers: []string{}},
		"full": {InitContainers: []string{"meshwarden-init", "istio-proxy"}, Containers: []string{"x"}, Volumes: []string{"v1", "v2"},
			Templates: []string{"istio"}, Revision: "r",
			Probes:     map[string]json.RawMessage{"b/livenessProbe": json.RawMessage(`{"tcpSocket":{"port":80}}`), "a/readinessProbe": json.RawMessage(`{"httpGet":{"path":"/x"}}`)},
			Prometheus: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
		"escaping":      {Templates: []string{"a\"b<c>&\u2028é"}, Revision: "\n", Prometheus: map[string]string{"k": "<&>"}},
		"spaced raw":    {Templates: []string{"t"}, Probes: map[string]json.RawMessage{"a/readinessProbe": json.RawMessage("{ \"httpGet\": {\"path\": \"/a<b\"} }")}},
		"pod resources": {Templates: []string{"t"}, PodResources: json.RawMessage(`{"requests":{"memory":"64Mi"}}`)},
		"non-ascii":     {Templates: []string{"t"}, Probes: map[string]json.RawMessage{"a/readinessProbe": json.RawMessage(`{"httpGet":{"path":"/é"}}`)}},
	}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(&st)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.marshal(); string(got) != string(want) {
				t.Fatalf("marshal = %s\nwant      %s", got, want)
			}
		})
	}
}
