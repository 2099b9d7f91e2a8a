package inject

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
)

// TestMarshalPatchMatchesEncodingJSON: the fast serialisation means exactly what encoding/json says.
func TestMarshalPatchMatchesEncodingJSON(t *testing.T) {
	in := newInjector(t, nil)
	for name, raw := range map[string][]byte{
		"plain":     podJSON(nil, nil),
		"overrides": podJSON(map[string]string{"a/b~c": "x"}, map[string]string{AnnProxyCPU: "1", "k/with~slash": "v\"q"}),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
			if err != nil || len(res.Patch) == 0 {
				t.Fatal(err, res)
			}
			res.Patch = append(res.Patch, jsonpatch.NewOperation("remove", "/spec/x", nil))
			fast, err := MarshalPatch(res.Patch)
			if err != nil {
				t.Fatal(err)
			}
			slow, _ := json.Marshal(res.Patch)
			var a, b any
			if err := json.Unmarshal(fast, &a); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			_ = json.Unmarshal(slow, &b)
			if diff := cmp.Diff(b, a); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}
