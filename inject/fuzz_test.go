package inject

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// FuzzParseAnnotations: no value of any annotation may panic the parser, and a value is either accepted
// or refused with an error naming exactly that annotation.
func FuzzParseAnnotations(f *testing.F) {
	for _, k := range knownKeys() {
		f.Add(k, "")
		f.Add(k, "100m")
		f.Add(k, "10.0.0.0/8,fd00::/8")
		f.Add(k, "80,443")
		f.Add(k, "*")
	}
	f.Add("sidecar.meshwarden.io/proxyCpu", "1")
	f.Fuzz(func(t *testing.T, key, value string) {
		_, errs := ParseAnnotations(map[string]string{key: value}, field.NewPath("metadata", "annotations"))
		if !inMeshwardenDomain(key) && len(errs) > 0 {
			t.Fatalf("foreign key %q refused: %v", key, errs)
		}
		for _, e := range errs {
			if e.Field != "metadata.annotations["+key+"]" {
				t.Fatalf("error names %q, want the annotation %q", e.Field, key)
			}
		}
	})
}

// FuzzInject: any pod bytes give an error, a skip, a denial, or a patch that applies cleanly and is a
// fixed point (injecting the result again changes nothing).
func FuzzInject(f *testing.F) {
	f.Add(podJSON(nil, nil))
	f.Add(podJSON(map[string]string{LabelInject: "true"}, map[string]string{AnnProxyCPU: "2", AnnInterception: "TPROXY"}))
	f.Add([]byte(`{"metadata":{"annotations":null},"spec":{"containers":[{"name":"envoy"}],"initContainers":null}}`))
	f.Add([]byte(`{"spec":{"containers":[{"name":"a"}],"volumes":[{"name":"meshwarden-proxy-tmp"}]}}`))
	in := newInjector(f, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
		if err != nil || len(res.Patch) == 0 {
			return
		}
		out, err := ApplyPatch(raw, res.Patch)
		if err != nil {
			t.Fatalf("patch does not apply to its own input: %v", err)
		}
		if !json.Valid(out) {
			t.Fatal("patched pod is not JSON")
		}
		again, err := in.Inject(Request{Pod: out, Namespace: enabledNS})
		if err != nil || len(again.Patch) != 0 || !again.Injected {
			t.Fatalf("second pass not a no-op: err=%v injected=%v ops=%d denied=%v", err, again.Injected, len(again.Patch), again.Denied)
		}
	})
}
