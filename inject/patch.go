package inject

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// plan turns a rendering into JSON patch operations against the pod as sent. Operations address only
// what meshwarden adds or removes, so every byte the user wrote, including fields this build of
// meshwarden does not know, stays exactly where it was.
type plan struct {
	ops []jsonpatch.Operation
	// names of the pod's lists as the operations leave them, to compute later positions.
	init, containers, volumes []string
}

func names[T named](items []T) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.itemName()
	}
	return out
}

// planPatch computes the operations. raw is needed only when a template merges into a user container.
func planPatch(raw func() ([]byte, error), pod *PodView, old *Status, r *rendered, s settings, e *podEdits) ([]jsonpatch.Operation, *Status, error) {
	p := &plan{init: names(pod.Spec.InitContainers), containers: names(pod.Spec.Containers), volumes: names(pod.Spec.Volumes)}

	// 1. Take out what an earlier injection added, so that this one starts from the user's pod.
	if old != nil {
		p.init = p.remove("/spec/initContainers", p.init, old.InitContainers)
		p.containers = p.remove("/spec/containers", p.containers, old.Containers)
		p.volumes = p.remove("/spec/volumes", p.volumes, old.Volumes)
	}
	userContainers := append([]string(nil), p.containers...)

	st := &Status{Templates: r.templates, Revision: r.revision, Probes: e.origProbes, Prometheus: e.origProm}

	// 2. Init containers go first, in template order: capture must be in place before anything else
	// runs, and a native-sidecar proxy must be up before the user's init containers need the network.
	var newInit []piece
	for _, pc := range r.initContainers {
		if indexOfName(p.init, pc.name) >= 0 {
			return nil, nil, &conflictError{kind: "init container", name: pc.name}
		}
		newInit = append(newInit, pc)
		st.InitContainers = append(st.InitContainers, pc.name)
	}
	p.insertFront("/spec/initContainers", &p.init, pod.hasInit, newInit, r.initArray)

	// 3. Containers: a template container named like a user container is merged into it (user's values
	// win); any other is added — last, or first when the app must wait for the proxy.
	var merges []piece
	for _, pc := range r.containers {
		if indexOfName(p.containers, pc.name) >= 0 {
			merges = append(merges, pc)
			continue
		}
		if s.hold && !s.native && pc.name == s.proxyName() {
			p.insertFront("/spec/containers", &p.containers, true, []piece{pc}, nil)
		} else {
			p.ops = append(p.ops, jsonpatch.NewOperation("add", "/spec/containers/-", pc.raw))
			p.containers = append(p.containers, pc.name)
		}
		st.Containers = append(st.Containers, pc.name)
	}
	if len(merges) > 0 {
		if err := p.mergeContainers(raw, old, merges); err != nil {
			return nil, nil, err
		}
	}

	// 4. Volumes.
	for _, pc := range r.volumes {
		if indexOfName(p.volumes, pc.name) >= 0 {
			return nil, nil, &conflictError{kind: "volume", name: pc.name}
		}
		st.Volumes = append(st.Volumes, pc.name)
	}
	p.appendAll("/spec/volumes", &p.volumes, pod.hasVolumes, r.volumes, r.volumesArray)

	// 5. Probes that go through the agent, addressed where the containers now are (indexed once:
	// a pod may have many containers).
	if len(e.probes) > 0 {
		initAt, containerAt := positions(p.init), positions(p.containers)
		for _, pe := range e.probes {
			at, base := containerAt, "/spec/containers/"
			if pe.init {
				at, base = initAt, "/spec/initContainers/"
			}
			i, ok := at[pe.container]
			if !ok {
				return nil, nil, fmt.Errorf("internal error: container %q of a probe edit is not in the pod", pe.container)
			}
			p.addProbeOp(base+strconv.Itoa(i)+"/"+pe.field, pe.value)
		}
	}

	// 5b. Pod-level resources grow by what the proxies take (podresources.go).
	if want, user, ok := podResourcesEdit(pod.Spec.Resources, statusOrEmpty(old).PodResources, r); ok {
		st.PodResources = user
		if !jsonEqual(want, pod.Spec.Resources) {
			p.ops = append(p.ops, jsonpatch.NewOperation("add", "/spec/resources", want))
		}
	}

	// 6. Labels and annotations: added where absent, never overwriting the user's, except the edits
	// that must point at the agent (their originals are in the status).
	if !pod.hasMetadata {
		p.ops = append(p.ops, jsonpatch.NewOperation("add", "/metadata", map[string]any{}))
	}
	labels := map[string]string{}
	for k, v := range r.labels {
		if _, ok := pod.labels[k]; !ok {
			labels[k] = v
		}
	}
	p.setMapEntries("/metadata/labels", pod.hasLabels, labels)
	ann := map[string]string{}
	for k, v := range r.annotations {
		if _, ok := pod.annotations[k]; !ok {
			ann[k] = v
		}
	}
	for k, v := range e.annotations {
		ann[k] = v
	}
	for _, k := range e.removed {
		p.ops = append(p.ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escapePointer(k), nil))
	}
	if _, ok := pod.annotations[AnnotationDefault]; !ok && len(userContainers) > 0 {
		ann[AnnotationDefault] = userContainers[0]
	}
	status := st.marshal()
	ann[AnnotationStatus] = string(status)
	p.setMapEntries("/metadata/annotations", pod.hasAnnotations, ann)
	return p.ops, st, nil
}

// addProbeOp sets a probe, or removes it when value is nil.
func (p *plan) addProbeOp(path string, value json.RawMessage) {
	if value == nil {
		p.ops = append(p.ops, jsonpatch.NewOperation("remove", path, nil))
		return
	}
	p.ops = append(p.ops, jsonpatch.NewOperation("add", path, value))
}

// positions maps each name to its index; the first wins, as the API server would refuse duplicates.
func positions(names []string) map[string]int {
	m := make(map[string]int, len(names))
	for i, n := range names {
		if _, ok := m[n]; !ok {
			m[n] = i
		}
	}
	return m
}

// remove emits remove operations for the named items, highest index first so indices stay valid.
// The names come from the status record, which the user can write: one pass with a set keeps it
// linear in the list and the record, however many names either holds.
func (p *plan) remove(path string, list, drop []string) []string {
	if len(drop) == 0 {
		return list
	}
	gone := setOf(drop)
	kept := make([]string, 0, len(list))
	for _, n := range list {
		if !gone[n] {
			kept = append(kept, n)
		}
	}
	for i := len(list) - 1; i >= 0; i-- {
		if gone[list[i]] {
			p.ops = append(p.ops, jsonpatch.NewOperation("remove", path+"/"+strconv.Itoa(i), nil))
		}
	}
	return kept
}

// insertFront puts items at the front of a list; whole is items as one JSON array when known.
func (p *plan) insertFront(path string, list *[]string, exists bool, items []piece, whole json.RawMessage) {
	if len(items) == 0 {
		return
	}
	if !exists {
		if whole == nil {
			whole = rawArray(items)
		}
		p.ops = append(p.ops, jsonpatch.NewOperation("add", path, whole))
	} else {
		for i, it := range items {
			p.ops = append(p.ops, jsonpatch.NewOperation("add", path+"/"+strconv.Itoa(i), it.raw))
		}
	}
	front := make([]string, 0, len(items)+len(*list))
	for _, it := range items {
		front = append(front, it.name)
	}
	*list = append(front, *list...)
}

func (p *plan) appendAll(path string, list *[]string, exists bool, items []piece, whole json.RawMessage) {
	if len(items) == 0 {
		return
	}
	if !exists {
		p.ops = append(p.ops, jsonpatch.NewOperation("add", path, whole))
	} else {
		for _, it := range items {
			p.ops = append(p.ops, jsonpatch.NewOperation("add", path+"/-", it.raw))
		}
	}
	for _, it := range items {
		*list = append(*list, it.name)
	}
}

func (p *plan) setMapEntries(path string, exists bool, entries map[string]string) {
	if len(entries) == 0 {
		return
	}
	if !exists {
		p.ops = append(p.ops, jsonpatch.NewOperation("add", path, entries))
		return
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.ops = append(p.ops, jsonpatch.NewOperation("add", path+"/"+escapePointer(k), entries[k]))
	}
}

// mergeContainers adds a template's fields to user containers of the same name: fields the user did
// not set are added; list entries (env, ports, volume mounts, envFrom) are appended when absent by
// their key. Nothing the user set is changed, which also makes a second pass add nothing.
func (p *plan) mergeContainers(rawPod func() ([]byte, error), old *Status, merges []piece) error {
	raw, err := rawPod()
	if err != nil {
		return err
	}
	var doc struct {
		Spec struct {
			Containers []map[string]json.RawMessage `json:"containers"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	// Positions in the raw document, before step 1's removals, adjusted for them below.
	var user []map[string]json.RawMessage
	for _, c := range doc.Spec.Containers {
		var name string
		_ = json.Unmarshal(c["name"], &name)
		if old == nil || indexOfName(old.Containers, name) < 0 {
			user = append(user, c)
		}
	}
	for _, m := range merges {
		var tc map[string]json.RawMessage
		if err := json.Unmarshal(m.raw, &tc); err != nil {
			return err
		}
		i := indexOfName(p.containers, m.name)
		var uc map[string]json.RawMessage
		for _, c := range user {
			var name string
			_ = json.Unmarshal(c["name"], &name)
			if name == m.name {
				uc = c
			}
		}
		base := "/spec/containers/" + strconv.Itoa(i)
		keys := make([]string, 0, len(tc))
		for k := range tc {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "name" {
				continue
			}
			if saysNothing(tc[k]) {
				continue // `resources: {}` and the like: the template said nothing to add
			}
			cur, ok := uc[k]
			if !ok || string(cur) == "null" {
				p.ops = append(p.ops, jsonpatch.NewOperation("add", base+"/"+escapePointer(k), tc[k]))
				continue
			}
			if key := listMergeKey[k]; key != nil {
				if err := p.appendMissing(base+"/"+k, cur, tc[k], key); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// listMergeKey identifies a list entry as the API server's strategic merge does: env by name,
// volumeMounts by mountPath, ports by containerPort and protocol (UDP/53 beside TCP/53), and envFrom,
// which has no key, by the whole source (two sources without a prefix are different sources).
var listMergeKey = map[string]func(map[string]json.RawMessage) string{
	"env":          func(e map[string]json.RawMessage) string { return string(e["name"]) },
	"volumeMounts": func(e map[string]json.RawMessage) string { return string(e["mountPath"]) },
	"ports": func(e map[string]json.RawMessage) string {
		proto := `"TCP"` // the API server's default
		if p, ok := e["protocol"]; ok && string(p) != "null" {
			proto = string(p)
		}
		return string(e["containerPort"]) + "/" + proto
	},
	"envFrom": func(e map[string]json.RawMessage) string { return string(canonicalJSON(e)) },
}

func (p *plan) appendMissing(path string, cur, add json.RawMessage, key func(map[string]json.RawMessage) string) error {
	var have, want []map[string]json.RawMessage
	if err := json.Unmarshal(cur, &have); err != nil {
		return fmt.Errorf("%s is not a list", path)
	}
	if err := json.Unmarshal(add, &want); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, h := range have {
		seen[key(h)] = true
	}
	for _, w := range want {
		if k := key(w); !seen[k] {
			seen[k] = true
			v, _ := json.Marshal(w)
			p.ops = append(p.ops, jsonpatch.NewOperation("add", path+"/-", json.RawMessage(v)))
		}
	}
	return nil
}

// canonicalJSON re-encodes a value with sorted keys and no spacing, so that equal values compare equal.
func canonicalJSON(v any) []byte {
	b, _ := json.Marshal(v)
	var x any
	if json.Unmarshal(b, &x) != nil {
		return b
	}
	b, _ = json.Marshal(x)
	return b
}

// saysNothing is true for null, {} and []: a template field that adds nothing.
func saysNothing(v json.RawMessage) bool {
	t := strings.Join(strings.Fields(string(v)), "")
	return t == "null" || t == "{}" || t == "[]"
}

func rawArray(items []piece) json.RawMessage {
	var b strings.Builder
	b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it.raw)
	}
	b.WriteByte(']')
	return json.RawMessage(b.String())
}

func indexOfName(list []string, name string) int {
	for i, n := range list {
		if n == name {
			return i
		}
	}
	return -1
}

// escapePointer escapes a map key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	if !strings.ContainsAny(k, "~/") {
		return k
	}
	return pointerEscaper.Replace(k)
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

type conflictError struct{ kind, name string }

func (e *conflictError) Error() string {
	return fmt.Sprintf("the pod already has a %s named %q that meshwarden did not add; rename it, or opt the pod out with the label sidecar.meshwarden.io/inject=false", e.kind, e.name)
}
