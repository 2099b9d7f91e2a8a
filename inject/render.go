package inject

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/templates"
)

// piece is one container or volume a template adds, serialised once.
type piece struct {
	name string
	raw  json.RawMessage
}

// rendered is what the templates produce for one (template set, settings): ready-to-patch pieces.
type rendered struct {
	initContainers, containers, volumes []piece
	// initArray and volumesArray are the pieces as one JSON array, for pods that have no such list yet.
	initArray, volumesArray json.RawMessage
	labels, annotations     map[string]string
	templates               []string
	// revision identifies this rendering; it goes into the status annotation, so a pod whose status
	// names the same revision is already injected exactly so.
	revision string
}

// TemplateData is what a template executes with.
type TemplateData struct {
	Values Values
	// Pod is the pod being injected, for templates that need it; reading it turns off render caching.
	Pod *corev1.Pod
}

// render executes the named templates and collects their output. pod is nil unless a template reads it.
func render(set *templates.Set, names []string, v Values, pod *corev1.Pod) (*rendered, error) {
	r := &rendered{templates: names}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", set.Revision)
	for _, name := range names {
		t, ok := set.Get(name)
		if !ok {
			return nil, &unknownTemplateError{name: name, known: set.Names()}
		}
		out, err := t.Execute(TemplateData{Values: v, Pod: pod})
		if err != nil {
			return nil, err
		}
		var partial corev1.Pod
		if err := strictYAML(out, &partial); err != nil {
			return nil, fmt.Errorf("template %q rendered an invalid partial pod: %w", name, err)
		}
		if err := onlySupportedFields(partial); err != nil {
			return nil, fmt.Errorf("template %q: %w", name, err)
		}
		if err := r.add(name, &partial); err != nil {
			return nil, err
		}
		h.Write(out)
	}
	r.revision = hex.EncodeToString(h.Sum(nil))[:12]
	r.initArray, r.volumesArray = rawArray(r.initContainers), rawArray(r.volumes)
	return r, nil
}

func (r *rendered) add(tmpl string, p *corev1.Pod) error {
	add := func(list *[]piece, kind, name string, obj any) error {
		for _, x := range *list {
			if x.name == name {
				return fmt.Errorf("templates add the %s %q twice (template %q); give one of them another name", kind, name, tmpl)
			}
		}
		raw, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		*list = append(*list, piece{name: name, raw: raw})
		return nil
	}
	for i := range p.Spec.InitContainers {
		if err := add(&r.initContainers, "init container", p.Spec.InitContainers[i].Name, &p.Spec.InitContainers[i]); err != nil {
			return err
		}
	}
	for i := range p.Spec.Containers {
		if err := add(&r.containers, "container", p.Spec.Containers[i].Name, &p.Spec.Containers[i]); err != nil {
			return err
		}
	}
	for i := range p.Spec.Volumes {
		if err := add(&r.volumes, "volume", p.Spec.Volumes[i].Name, &p.Spec.Volumes[i]); err != nil {
			return err
		}
	}
	r.labels = mergeMaps(r.labels, p.Labels)
	r.annotations = mergeMaps(r.annotations, p.Annotations)
	return nil
}

func mergeMaps(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]string{}
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// strictYAML decodes YAML into v and fails on fields v does not have: a typo in a template must be
// an error at load, not a field silently dropped from every pod.
func strictYAML(data []byte, v any) error {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return err
	}
	return strictJSON(j, v)
}

func strictJSON(j []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// onlySupportedFields refuses a partial pod that sets anything injection does not merge; otherwise it
// would be dropped without a word.
func onlySupportedFields(p corev1.Pod) error {
	p.Labels, p.Annotations = nil, nil
	p.Spec.InitContainers, p.Spec.Containers, p.Spec.Volumes = nil, nil, nil
	if !reflect.DeepEqual(p, corev1.Pod{}) {
		return fmt.Errorf("a template may set only metadata.labels, metadata.annotations, spec.initContainers, spec.containers and spec.volumes")
	}
	return nil
}

type unknownTemplateError struct {
	name  string
	known []string
}

func (e *unknownTemplateError) Error() string {
	return fmt.Sprintf("no injection template named %q; available: %s", e.name, strings.Join(e.known, ", "))
}
