package inject

import (
	"encoding/json"
	"fmt"

	jsonpatch5 "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
)

// PodTemplatePath is where a workload kind keeps its pod template, as field names from the object's
// root; nil for kinds without one. A Pod is its own template (an empty path).
func PodTemplatePath(kind string) []string {
	switch kind {
	case "Pod":
		return []string{}
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController":
		return []string{"spec", "template"}
	case "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template"}
	}
	return nil
}

// ApplyPatch applies operations to a document. It is what the API server does with the webhook's
// patch; `meshwarden inject` and the tests use it to get the same result offline.
func ApplyPatch(doc []byte, ops []jsonpatch.Operation) ([]byte, error) {
	if len(ops) == 0 {
		return doc, nil
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch5.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("decoding patch: %w", err)
	}
	return p.ApplyWithOptions(doc, jsonpatch5.NewApplyOptions())
}
