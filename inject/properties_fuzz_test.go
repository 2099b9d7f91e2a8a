package inject

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
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
	restoreEdits(out, st)
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

// restoreEdits puts back what injection replaced, from the originals its status records: the pod-level
// resources it added the proxies to, the app's probes it sent through the agent and the prometheus.io
// annotations it pointed there.
func restoreEdits(pod map[string]any, st Status) {
	spec, _ := pod["spec"].(map[string]any)
	if st.PodResources != nil && spec != nil {
		var r any
		if json.Unmarshal(st.PodResources, &r) == nil {
			spec["resources"] = r // the user's pod-level resources, before the proxies were added
		}
	}
	for key, orig := range st.Probes {
		name, fieldName, _ := strings.Cut(key, "/")
		for _, list := range []string{"initContainers", "containers"} {
			items, _ := spec[list].([]any)
			for _, it := range items {
				c, _ := it.(map[string]any)
				if c["name"] == name {
					var v any
					_ = json.Unmarshal(orig, &v)
					c[fieldName] = v
				}
			}
		}
	}
	meta, _ := pod["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		return
	}
	for _, k := range []string{annPromScrape, annPromPort, annPromPath} {
		if v, ok := st.Prometheus[k]; ok {
			ann[k] = v
		}
	}
}

// dropEarlierInjection takes out of an input pod what an earlier injection added, as its status
// annotation lists it, and the annotation itself: re-injection replaces exactly those, by design.
func dropEarlierInjection(orig map[string]any) {
	meta, _ := orig["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	s, _ := ann[AnnotationStatus].(string)
	var st Status
	if s == "" || json.Unmarshal([]byte(s), &st) != nil {
		return
	}
	delete(ann, AnnotationStatus)
	restoreEdits(orig, st)
	spec, _ := orig["spec"].(map[string]any)
	for key, added := range map[string][]string{"initContainers": st.InitContainers, "containers": st.Containers, "volumes": st.Volumes} {
		list, ok := spec[key].([]any)
		if !ok {
			continue
		}
		kept := []any{}
		for _, item := range list {
			m, _ := item.(map[string]any)
			if name, _ := m["name"].(string); !contains(added, name) {
				kept = append(kept, item)
			}
		}
		spec[key] = kept
	}
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
			if (name == ProxyName || name == IstioProxyName) && ann[AnnProxyImage] != "" {
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

// goldenPods returns the pods of the golden inputs of `meshwarden inject` as JSON: Pods as they are,
// workloads as their pod templates (what their controllers will create).
func goldenPods(t testing.TB) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "cmd", "meshwarden", "testdata", "inject", "*.yaml"))
	var out [][]byte
	var add func(obj map[string]any)
	add = func(obj map[string]any) {
		spec, _ := obj["spec"].(map[string]any)
		switch {
		case obj["kind"] == "List":
			items, _ := obj["items"].([]any)
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					add(m)
				}
			}
			return
		case obj["kind"] == "Pod":
		case spec["template"] != nil:
			obj, _ = spec["template"].(map[string]any)
		case spec["jobTemplate"] != nil:
			jt, _ := spec["jobTemplate"].(map[string]any)
			js, _ := jt["spec"].(map[string]any)
			obj, _ = js["template"].(map[string]any)
		default:
			return
		}
		if b, err := json.Marshal(obj); err == nil {
			out = append(out, b)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var obj map[string]any
			if yaml.Unmarshal([]byte(doc), &obj) == nil && obj != nil {
				add(obj)
			}
		}
	}
	return out
}

// FuzzInjectKeepsUserPod is FuzzInjectProperties' first invariant on arbitrary pod bytes, seeded
// with the pods of the golden inputs: whatever the pod, once the additions named by the status
// annotation are taken out, the injected pod is the original as JSON. Containers a template merges
// into a user container of the same name are compared by name only (the user's values win there
// by design and lists may grow).
func FuzzInjectKeepsUserPod(f *testing.F) {
	for _, p := range goldenPods(f) {
		f.Add(p)
	}
	f.Add(richPod(map[string]string{AnnInterception: "NONE"}))
	in := newInjector(f, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
		if err != nil || !res.Injected || len(res.Denied) > 0 || len(res.Patch) == 0 {
			return
		}
		var orig, got map[string]any
		if json.Unmarshal(raw, &orig) != nil || !uniqueKeys(raw) {
			return // duplicate keys: which one "the original" is depends on the reader
		}
		dropEarlierInjection(orig)
		out, err := ApplyPatch(raw, res.Patch)
		if err != nil {
			t.Fatalf("patch does not apply: %v", err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("patched pod is not JSON: %v", err)
		}
		if _, ok := orig["metadata"].(map[string]any); !ok {
			orig["metadata"] = nil // added by the patch when absent; compared below without it
		}
		merged := mergedNames(orig)
		dropNamed(orig, merged)
		dropNamed(got, merged)
		stripped := withoutAdditions(t, got, orig)
		if orig["metadata"] == nil {
			delete(orig, "metadata")
			if m, _ := stripped["metadata"].(map[string]any); len(m) == 0 {
				delete(stripped, "metadata")
			}
		}
		if diff := cmp.Diff(orig, stripped); diff != "" {
			t.Fatalf("injection changed the user's pod beyond the documented additions (-orig +got):\n%s", diff)
		}
	})
}

// mergedNames are the user's containers a template would merge into (named like the proxy).
func mergedNames(pod map[string]any) []string {
	spec, _ := pod["spec"].(map[string]any)
	var names []string
	for _, key := range []string{"initContainers", "containers"} {
		list, _ := spec[key].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok && (m["name"] == ProxyName || m["name"] == InitName) {
				names = append(names, m["name"].(string))
			}
		}
	}
	return names
}

func dropNamed(pod map[string]any, names []string) {
	spec, _ := pod["spec"].(map[string]any)
	for _, key := range []string{"initContainers", "containers"} {
		list, ok := spec[key].([]any)
		if !ok {
			continue
		}
		kept := []any{}
		for _, c := range list {
			if m, ok := c.(map[string]any); ok && contains(names, fmt.Sprint(m["name"])) {
				continue
			}
			kept = append(kept, c)
		}
		spec[key] = kept
	}
}

// uniqueKeys reports whether no JSON object in raw repeats a key.
func uniqueKeys(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return false
				}
				if seen[k.(string)] {
					return false
				}
				seen[k.(string)] = true
				if !walk() {
					return false
				}
			}
			_, err = dec.Token()
			return err == nil
		case json.Delim('['):
			for dec.More() {
				if !walk() {
					return false
				}
			}
			_, err = dec.Token()
			return err == nil
		}
		return true
	}
	return walk()
}

// TestWriteGoldenFuzzSeeds seeds the fuzz cache of the targets that take whole pods or whole
// AdmissionReviews with the pods of the golden inputs; `make fuzz` runs it first with
// MESHWARDEN_FUZZ_CACHE set to $(go env GOCACHE)/fuzz/<module>. Without it, it does nothing.
func TestWriteGoldenFuzzSeeds(t *testing.T) {
	root := os.Getenv("MESHWARDEN_FUZZ_CACHE")
	if root == "" {
		t.Skip("MESHWARDEN_FUZZ_CACHE not set; `make fuzz` sets it")
	}
	write := func(target string, data []byte) {
		dir := filepath.Join(root, target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		file := filepath.Join(dir, "golden-"+hex.EncodeToString(sum[:8]))
		if err := os.WriteFile(file, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pods := goldenPods(t)
	for _, p := range pods {
		write("inject/FuzzInject", p)
		review, _ := json.Marshal(map[string]any{
			"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
			"request": map[string]any{
				"uid": "golden", "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"},
				"resource":  map[string]any{"group": "", "version": "v1", "resource": "pods"},
				"namespace": "shop", "operation": "CREATE", "object": json.RawMessage(p),
			},
		})
		write("webhook/FuzzInjectHandler", review)
	}
	t.Logf("wrote %d golden pods as seeds of inject/FuzzInject and webhook/FuzzInjectHandler under %s", len(pods), root)
}
