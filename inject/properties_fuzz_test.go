package inject

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// richPod is a pod that sets fields meshwarden must leave alone, some unknown to this build of
// client-go (the raw-JSON diff must keep them), with two annotations taken from the fuzzer.
func richPod(annotations map[string]string) []byte {
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": "p", "labels": map[string]any{"app": "shop"}, "annotations": annotations,
			"x-unknown-metadata": map[string]any{"kept": true},
		},
		"spec": map[string]any{
			"securityContext": map[string]any{"runAsNonRoot": true, "fsGroup": 2000},
			"initContainers":  []any{map[string]any{"name": "migrate", "image": "migrate:1", "command": []any{"/migrate"}}},
			"containers": []any{map[string]any{
				"name": "app", "image": "app:1", "command": []any{"/app", "--flag"},
				"securityContext": map[string]any{"capabilities": map[string]any{"drop": []any{"ALL"}}},
				"ports":           []any{map[string]any{"containerPort": 8080}},
				"x-unknown-field": "kept",
			}},
			"volumes":            []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}},
			"x-unknown-spec":     []any{1, "two", nil},
			"serviceAccountName": "shop",
		},
	}
	b, err := json.Marshal(pod)
	if err != nil {
		panic(err)
	}
	return b
}

// withoutAdditions removes from an injected pod (as generic JSON) exactly what its status
// annotation says meshwarden added, and the labels and annotations the original did not have.
func withoutAdditions(t *testing.T, out, orig map[string]any) map[string]any {
	t.Helper()
	meta, _ := out["metadata"].(map[string]any)
	origMeta, _ := orig["metadata"].(map[string]any)
	var st Status
	ann, _ := meta["annotations"].(map[string]any)
	if s, ok := ann[AnnotationStatus].(string); !ok || json.Unmarshal([]byte(s), &st) != nil {
		t.Fatalf("injected pod has no valid status annotation: %v", ann[AnnotationStatus])
	}
	for _, key := range []string{"labels", "annotations"} {
		m, _ := meta[key].(map[string]any)
		om, _ := origMeta[key].(map[string]any)
		for k := range m {
			if _, ok := om[k]; !ok {
				delete(m, k)
			}
		}
		if len(m) == 0 && origMeta[key] == nil {
			delete(meta, key)
		}
	}
	spec, _ := out["spec"].(map[string]any)
	origSpec, _ := orig["spec"].(map[string]any)
	for key, added := range map[string][]string{"initContainers": st.InitContainers, "containers": st.Containers, "volumes": st.Volumes} {
		list, _ := spec[key].([]any)
		kept := []any{}
		for _, item := range list {
			name, _ := item.(map[string]any)["name"].(string)
			if !contains(added, name) {
				kept = append(kept, item)
			}
		}
		if len(kept) == 0 && origSpec[key] == nil {
			delete(spec, key)
		} else {
			spec[key] = kept
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// meshwardenContainers maps each container meshwarden added to its security-relevant fields.
func meshwardenContainers(t testing.TB, raw []byte) map[string]map[string]any {
	t.Helper()
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	var st Status
	_ = json.Unmarshal([]byte(pod.Annotations[AnnotationStatus]), &st)
	out := map[string]map[string]any{}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if contains(st.InitContainers, c.Name) || contains(st.Containers, c.Name) {
			out[c.Name] = map[string]any{"securityContext": c.SecurityContext, "command": c.Command, "image": c.Image}
		}
	}
	return out
}

// FuzzInjectProperties checks the invariants of issue 9 over fuzzed annotation values (two of
// meshwarden's keys chosen by index, one arbitrary key): an injected pod keeps every field of the
// original, byte for byte as JSON, once the additions its status annotation names are taken out;
// and no annotation value gives meshwarden's containers another securityContext, capability or
// command, or another image except the proxy's through the documented proxyImage knob.
func FuzzInjectProperties(f *testing.F) {
	keys := knownKeys()
	for i := range keys {
		for _, v := range append([]string{"", "100m", "1Gi", "NONE", "TPROXY", "true", "false", "15021", "debug", "10.0.0.0/8", "80,443", "*", "sidecar", "registry.example/envoy:2"}, hostileValues[:3]...) {
			f.Add(uint8(i), v, uint8(i+1), "true", "example.com/x", "y")
		}
	}
	in := newInjector(f, nil)
	plainRaw := richPod(nil)
	plainRes, err := in.Inject(Request{Pod: plainRaw, Namespace: enabledNS})
	if err != nil {
		f.Fatal(err)
	}
	plainOut, err := ApplyPatch(plainRaw, plainRes.Patch)
	if err != nil {
		f.Fatal(err)
	}
	baseline := meshwardenContainers(f, plainOut)
	f.Fuzz(func(t *testing.T, i1 uint8, v1 string, i2 uint8, v2 string, k3, v3 string) {
		ann := map[string]string{keys[int(i1)%len(keys)]: v1, keys[int(i2)%len(keys)]: v2, k3: v3}
		delete(ann, AnnotationStatus) // a forged status is covered by FuzzInject's fixed-point check
		raw := richPod(ann)
		res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
		if err != nil || !res.Injected || len(res.Denied) > 0 || len(res.Patch) == 0 {
			return
		}
		out, err := ApplyPatch(raw, res.Patch)
		if err != nil {
			t.Fatalf("patch does not apply: %v", err)
		}
		var orig, got map[string]any
		if err := json.Unmarshal(raw, &orig); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("patched pod is not JSON: %v", err)
		}
		if diff := cmp.Diff(orig, withoutAdditions(t, got, orig)); diff != "" {
			t.Fatalf("injection changed the user's pod beyond the documented additions (-orig +got):\n%s", diff)
		}
		for name, c := range meshwardenContainers(t, out) {
			want, ok := baseline[name]
			if !ok {
				t.Fatalf("annotations %q added container %q, which a plain injection does not", ann, name)
			}
			if name == ProxyName && ann[AnnProxyImage] != "" {
				if c["image"] != ann[AnnProxyImage] {
					t.Fatalf("proxy image %q, want the proxyImage annotation %q", c["image"], ann[AnnProxyImage])
				}
				c["image"] = want["image"]
			}
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("annotations %q changed container %s (-plain +got):\n%s", ann, name, cmp.Diff(want, c))
			}
		}
	})
}
