package inject

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshwarden/meshwarden/config"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// TestPatchAgreesWithDiff checks the position-based patch against an independent route on the golden
// inputs: build the injected pod with typed Go (prepend init containers, append containers and
// volumes, add annotations), diff it against the input with gomodules.xyz/jsonpatch, apply both patches
// and compare. Both sides go through corev1.Pod, so fields unknown to the compiled types (which only
// the position-based patch keeps) do not count.
func TestPatchAgreesWithDiff(t *testing.T) {
	files, _ := filepath.Glob("../cmd/meshwarden/testdata/inject/*.yaml")
	if len(files) == 0 {
		t.Fatal("no golden inputs")
	}
	for _, prof := range []struct {
		name   string
		mutate func(*config.Config)
	}{{"istio", nil}, {"envoy", envoyProfile}} {
		t.Run(prof.name, func(t *testing.T) { patchAgreesWithDiff(t, newInjector(t, prof.mutate), files) })
	}
}

func patchAgreesWithDiff(t *testing.T, in *Injector, files []string) {
	checked := 0
	for _, f := range files {
		for i, raw := range podTemplatesOf(t, f) {
			res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
			if err != nil || len(res.Patch) == 0 {
				continue
			}
			viaOps, err := ApplyPatch(raw, res.Patch)
			if err != nil {
				t.Fatal(err)
			}
			want := typedInjection(t, in, raw, viaOps)
			diff, err := jsonpatch.CreatePatch(raw, want)
			if err != nil {
				t.Fatal(err)
			}
			viaDiff, err := ApplyPatch(raw, diff)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(canonical(t, viaDiff), canonical(t, viaOps)); d != "" {
				t.Errorf("%s #%d: position patch and diff patch disagree (-diff +ops):\n%s", filepath.Base(f), i, d)
			}
			checked++
		}
	}
	if checked < 5 {
		t.Fatalf("only %d pods checked", checked)
	}
}

// typedInjection is the reference: the injected pod built from typed objects.
func typedInjection(t *testing.T, in *Injector, raw, injected []byte) []byte {
	var pod, out corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(injected, &out)
	// An earlier injection is taken out first, as its status annotation lists it.
	if old, ok := parseStatus(pod.Annotations[AnnotationStatus]); ok {
		keep := func(list []corev1.Container, drop []string) []corev1.Container {
			var out []corev1.Container
			for _, c := range list {
				if indexOfName(drop, c.Name) < 0 {
					out = append(out, c)
				}
			}
			return out
		}
		pod.Spec.InitContainers = keep(pod.Spec.InitContainers, old.InitContainers)
		pod.Spec.Containers = keep(pod.Spec.Containers, old.Containers)
		var vols []corev1.Volume
		for _, v := range pod.Spec.Volumes {
			if indexOfName(old.Volumes, v.Name) < 0 {
				vols = append(vols, v)
			}
		}
		pod.Spec.Volumes = vols
	}
	ov, _ := ParseAnnotations(pod.Annotations, annotationsPath)
	s := settingsFor(in.cfg.Injection, ov)
	var edits podEdits
	if in.istio != nil {
		view, err := decodePod(raw)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := parseStatus(pod.Annotations[AnnotationStatus])
		s.facts, edits, _ = in.istio.facts(view, enabledNS, old, ov)
	}
	r, err := in.render(s, func() ([]byte, error) { return raw, nil })
	if err != nil {
		t.Fatal(err)
	}
	var init, containers []corev1.Container
	for _, p := range r.initContainers {
		var c corev1.Container
		_ = json.Unmarshal(p.raw, &c)
		init = append(init, c)
	}
	user := pod.Spec.Containers
	for _, p := range r.containers {
		var c corev1.Container
		_ = json.Unmarshal(p.raw, &c)
		containers = append(containers, c)
	}
	if s.hold && !s.native {
		pod.Spec.Containers = append(containers, user...)
	} else {
		pod.Spec.Containers = append(user, containers...)
	}
	pod.Spec.InitContainers = append(init, pod.Spec.InitContainers...)
	// Pod-level resources grow by every proxy's (containers, and init containers that keep running),
	// for each resource the pod sets.
	if pr := pod.Spec.Resources; pr != nil {
		for _, c := range append(append([]corev1.Container(nil), containers...), init...) {
			if isInit := indexOfPiece(r.initContainers, c.Name) >= 0; isInit && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, pair := range []struct{ sum, add corev1.ResourceList }{{pr.Requests, c.Resources.Requests}, {pr.Limits, c.Resources.Limits}} {
				for name, q := range pair.add {
					if have, ok := pair.sum[name]; ok {
						have.Add(q)
						pair.sum[name] = have
					}
				}
			}
		}
	}
	for _, p := range r.volumes {
		var v corev1.Volume
		_ = json.Unmarshal(p.raw, &v)
		pod.Spec.Volumes = append(pod.Spec.Volumes, v)
	}
	for _, pe := range edits.probes {
		var probe *corev1.Probe
		if pe.value != nil {
			probe = &corev1.Probe{}
			if err := json.Unmarshal(pe.value, probe); err != nil {
				t.Fatal(err)
			}
		}
		list := pod.Spec.Containers
		if pe.init {
			list = pod.Spec.InitContainers
		}
		for i := range list {
			if list[i].Name != pe.container {
				continue
			}
			switch pe.field {
			case "readinessProbe":
				list[i].ReadinessProbe = probe
			case "livenessProbe":
				list[i].LivenessProbe = probe
			case "startupProbe":
				list[i].StartupProbe = probe
			case "lifecycle/preStop", "lifecycle/postStart":
				var h *corev1.LifecycleHandler
				if pe.value != nil {
					h = &corev1.LifecycleHandler{}
					if err := json.Unmarshal(pe.value, h); err != nil {
						t.Fatal(err)
					}
				}
				if list[i].Lifecycle == nil {
					list[i].Lifecycle = &corev1.Lifecycle{}
				}
				if pe.field == "lifecycle/preStop" {
					list[i].Lifecycle.PreStop = h
				} else {
					list[i].Lifecycle.PostStart = h
				}
			}
		}
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	for k, v := range r.labels {
		if _, ok := pod.Labels[k]; !ok {
			if pod.Labels == nil {
				pod.Labels = map[string]string{}
			}
			pod.Labels[k] = v
		}
	}
	for k, v := range r.annotations {
		if _, ok := pod.Annotations[k]; !ok {
			pod.Annotations[k] = v
		}
	}
	for k, v := range edits.annotations {
		pod.Annotations[k] = v
	}
	for _, k := range edits.removed {
		delete(pod.Annotations, k)
	}
	if _, ok := pod.Annotations[AnnotationDefault]; !ok {
		pod.Annotations[AnnotationDefault] = user[0].Name
	}
	pod.Annotations[AnnotationStatus] = out.Annotations[AnnotationStatus]
	b, _ := json.Marshal(pod)
	return b
}

func canonical(t *testing.T, b []byte) corev1.Pod {
	var p corev1.Pod
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// podTemplatesOf returns the pod templates (as JSON) of the workloads in a YAML file.
func podTemplatesOf(t *testing.T, path string) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var walk func(obj map[string]any)
	walk = func(obj map[string]any) {
		if items, ok := obj["items"].([]any); ok {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					walk(m)
				}
			}
			return
		}
		kind, _ := obj["kind"].(string)
		p := PodTemplatePath(kind)
		if p == nil {
			return
		}
		cur := obj
		for _, k := range p {
			cur, _ = cur[k].(map[string]any)
		}
		if cur != nil {
			b, _ := json.Marshal(cur)
			out = append(out, b)
		}
	}
	for _, doc := range strings.Split(string(data), "\n---") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err == nil && obj != nil {
			walk(obj)
		}
	}
	return out
}
