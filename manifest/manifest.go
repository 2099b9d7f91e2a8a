// Package manifest reads Kubernetes manifests (files, directories, stdin; multi-document YAML and
// Lists) and injects the workloads in them through the same injector the webhook uses. Documents that
// are not changed are printed back byte for byte.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/inject"
)

// Doc is one YAML document and where it came from.
type Doc struct {
	Source string // file#index, for messages
	Raw    []byte
}

// Read returns every document of the named files, directories (their .yaml, .yml and .json files,
// sorted) and "-" (stdin), in order.
func Read(paths []string, stdin io.Reader) ([]Doc, error) {
	var docs []Doc
	for _, p := range paths {
		if p == "-" {
			d, err := split("stdin", stdin)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			d, err := split(f, fh)
			fh.Close()
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

func expand(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func split(source string, r io.Reader) ([]Doc, error) {
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []Doc
	for i := 0; ; i++ {
		raw, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		docs = append(docs, Doc{Source: fmt.Sprintf("%s#%d", source, i), Raw: raw})
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || bytes.Equal(t, []byte("---")) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// Result is what happened to one document.
type Result struct {
	Object  string   // "Kind namespace/name" of the document
	Output  string   // the document to print: injected, or the input unchanged
	Denied  []string // messages, each naming the field
	Skipped []Skip
}

// Skip is a workload left as it was, and why.
type Skip struct {
	Object string
	Reason inject.Reason
}

// Inject injects every workload in the document (a List's items included).
func Inject(in *inject.Injector, d Doc) (Result, error) {
	j, err := yaml.YAMLToJSON(d.Raw)
	if err != nil {
		return Result{}, fmt.Errorf("not valid YAML: %w", err)
	}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber() // keep numbers exactly as written
	if err := dec.Decode(&obj); err != nil {
		return Result{}, fmt.Errorf("not a Kubernetes object (a YAML mapping with kind): %w", err)
	}
	res := Result{Object: describe(obj)}
	changed, err := injectObject(in, obj, &res)
	if err != nil {
		return Result{}, err
	}
	if !changed {
		res.Output = string(d.Raw)
		if !strings.HasSuffix(res.Output, "\n") {
			res.Output += "\n"
		}
		return res, nil
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return Result{}, err
	}
	y, err := yaml.JSONToYAML(out)
	if err != nil {
		return Result{}, err
	}
	res.Output = string(y)
	return res, nil
}

func injectObject(in *inject.Injector, obj map[string]any, res *Result) (bool, error) {
	kind, _ := obj["kind"].(string)
	if items, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		changed := false
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				c, err := injectObject(in, m, res)
				if err != nil {
					return false, err
				}
				changed = changed || c
			}
		}
		return changed, nil
	}
	path := inject.PodTemplatePath(kind)
	if path == nil {
		// A workload kind meshwarden does not know (an OpenShift DeploymentConfig, say) is said, not
		// silently passed over.
		if spec, ok := obj["spec"].(map[string]any); ok && spec["template"] != nil {
			res.Skipped = append(res.Skipped, Skip{Object: describe(obj), Reason: inject.SkipUnsupportedKind})
		}
		return false, nil
	}
	tmpl := obj
	for _, k := range path {
		next, ok := tmpl[k].(map[string]any)
		if !ok {
			return false, nil
		}
		tmpl = next
	}
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return false, err
	}
	ns := "default"
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if n, ok := meta["namespace"].(string); ok && n != "" {
			ns = n
		}
	}
	r, err := in.Inject(inject.Request{Pod: raw, Namespace: inject.Namespace{Name: ns, Labels: map[string]string{inject.NamespaceLabel: "enabled"}}})
	if err != nil {
		return false, err
	}
	switch {
	case len(r.Denied) > 0:
		for _, e := range r.Denied {
			res.Denied = append(res.Denied, prefixed(path, e))
		}
		return false, nil
	case !r.Injected:
		res.Skipped = append(res.Skipped, Skip{Object: describe(obj), Reason: r.Reason})
		return false, nil
	case len(r.Patch) == 0:
		return false, nil
	}
	patched, err := inject.ApplyPatch(raw, r.Patch)
	if err != nil {
		return false, err
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(patched))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return false, err
	}
	clear(tmpl)
	for k, v := range out {
		tmpl[k] = v
	}
	return true, nil
}

// prefixed makes a pod-relative field error relative to the workload, e.g.
// spec.template.metadata.annotations[...].
func prefixed(path []string, e *field.Error) string {
	c := *e
	if len(path) > 0 {
		c.Field = strings.Join(path, ".") + "." + c.Field
	}
	return c.Error()
}

func describe(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		name, _ = meta["generateName"].(string)
	}
	if ns, _ := meta["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	return strings.TrimSpace(kind + " " + name)
}
