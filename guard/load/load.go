// Package load turns Kubernetes manifests (YAML or JSON, multi-document, v1 List) into a guard.Snapshot
// for `meshwarden check`. The whole input is one snapshot, so the order of files does not matter; an
// object given twice (same kind, namespace and name) keeps its last version, as kubectl apply would.
package load

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/guard"
)

// Loader collects objects from any number of inputs into one snapshot.
type Loader struct {
	// DefaultNamespace is given to objects without metadata.namespace, like kubectl's current namespace.
	DefaultNamespace string

	objs map[string]any // "kind/ns/name" → object
	// Ignored counts documents of kinds that play no part in the checks.
	Ignored int
	// SkipWorkloads makes AddCluster skip Pods and Nodes, which only the DestinationRule and Gateway
	// checks read: listing 20k pods for a VirtualService admission would be wasted.
	SkipWorkloads bool
}

// New returns a Loader that puts objects without a namespace into ns.
func New(ns string) *Loader { return &Loader{DefaultNamespace: ns, objs: map[string]any{}} }

// AddPath loads a file, or every .yaml, .yml and .json file under a directory, in name order.
func (l *Loader) AddPath(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return l.addFile(path)
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		if err := l.addFile(f); err != nil {
			return err
		}
	}
	return nil
}

func (l *Loader) addFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return l.AddReader(path, f)
}

// AddReader loads every document of r; name is used in error messages.
func (l *Loader) AddReader(name string, r io.Reader) error {
	rd := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for i := 1; ; i++ {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if err := l.addDocument(doc); err != nil {
			return fmt.Errorf("%s: document %d: %w", name, i, err)
		}
	}
}

// AddObject adds one already decoded object (the cluster's, in live mode); files added later replace it.
func (l *Loader) AddObject(obj any) {
	switch o := obj.(type) {
	case *corev1.Service:
		l.put("Service", &o.ObjectMeta, o)
	case *networking.ServiceEntry:
		l.put("ServiceEntry", &o.ObjectMeta, o)
	case *networking.Gateway:
		l.put("Gateway", &o.ObjectMeta, o)
	case *networking.VirtualService:
		l.put("VirtualService", &o.ObjectMeta, o)
	case *networking.DestinationRule:
		l.put("DestinationRule", &o.ObjectMeta, o)
	case guard.Workload:
		l.objs["Workload/"+o.Namespace+"/"+o.Kind+"/"+o.Name] = o
	case guard.KubeGateway:
		l.objs["KubeGateway/"+o.Namespace+"/"+o.Name] = o
	case node:
		l.objs["Node//"+o.name] = o
	}
}

type node struct {
	name   string
	labels map[string]string
}

func (l *Loader) put(kind string, m *metav1.ObjectMeta, obj any) {
	if m.Namespace == "" {
		m.Namespace = l.DefaultNamespace
	}
	l.objs[kind+"/"+m.Namespace+"/"+m.Name] = obj
}

func (l *Loader) addDocument(doc []byte) error {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 {
		return nil
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	if string(js) == "null" {
		return nil // only comments
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return fmt.Errorf("not a Kubernetes object (a mapping with apiVersion and kind): %w", err)
	}
	if tm.Kind == "" {
		return errors.New("kind is missing; every document needs apiVersion and kind")
	}
	group, _, _ := strings.Cut(tm.APIVersion, "/")
	if !strings.Contains(tm.APIVersion, "/") {
		group = ""
	}
	return l.decode(group, tm.Kind, js)
}

func (l *Loader) decode(group, kind string, js []byte) error {
	into := func(obj any) error {
		if err := json.Unmarshal(js, obj); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		l.AddObject(obj)
		return nil
	}
	switch {
	case kind == "List" || strings.HasSuffix(kind, "List") && group == "":
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(js, &list); err != nil {
			return fmt.Errorf("List: %w", err)
		}
		for i, it := range list.Items {
			if err := l.addDocument(it); err != nil {
				return fmt.Errorf("items[%d]: %w", i, err)
			}
		}
		return nil
	case group == "networking.istio.io":
		switch kind {
		case "VirtualService":
			return into(&networking.VirtualService{})
		case "DestinationRule":
			return into(&networking.DestinationRule{})
		case "Gateway":
			return into(&networking.Gateway{})
		case "ServiceEntry":
			return into(&networking.ServiceEntry{})
		}
	case group == "gateway.networking.k8s.io" && kind == "Gateway":
		return l.kubeGateway(js)
	case group == "" && kind == "Service":
		return into(&corev1.Service{})
	case group == "" && kind == "Node":
		var n metav1.PartialObjectMetadata
		if err := json.Unmarshal(js, &n); err != nil {
			return fmt.Errorf("Node: %w", err)
		}
		l.AddObject(node{name: n.Name, labels: n.Labels})
		return nil
	case group == "" && (kind == "Pod" || kind == "ReplicationController"), group == "apps", group == "batch":
		return l.workload(kind, js)
	}
	l.Ignored++
	return nil
}

// workload takes a Pod, or the pod template of a workload standing in for its pods offline.
func (l *Loader) workload(kind string, js []byte) error {
	type meta struct {
		metav1.ObjectMeta `json:"metadata"`
	}
	var w struct {
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			NodeName    string `json:"nodeName"`
			Template    *meta  `json:"template"`
			JobTemplate *struct {
				Spec struct {
					Template *meta `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(js, &w); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	ns := w.Namespace
	if ns == "" {
		ns = l.DefaultNamespace
	}
	labels := w.Labels
	switch {
	case kind == "Pod":
	case w.Spec.Template != nil:
		labels = w.Spec.Template.Labels
	case w.Spec.JobTemplate != nil && w.Spec.JobTemplate.Spec.Template != nil:
		labels = w.Spec.JobTemplate.Spec.Template.Labels
	default:
		l.Ignored++
		return nil
	}
	l.AddObject(guard.Workload{Kind: kind, Namespace: ns, Name: w.Name, Labels: labels, NodeName: w.Spec.NodeName})
	return nil
}

func (l *Loader) kubeGateway(js []byte) error {
	var g struct {
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Listeners []struct {
				Hostname string `json:"hostname"`
			} `json:"listeners"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(js, &g); err != nil {
		return fmt.Errorf("Gateway: %w", err)
	}
	ns := g.Namespace
	if ns == "" {
		ns = l.DefaultNamespace
	}
	kg := guard.KubeGateway{Namespace: ns, Name: g.Name}
	for _, li := range g.Spec.Listeners {
		h := li.Hostname
		if h == "" {
			h = "*"
		}
		kg.Hostnames = append(kg.Hostnames, h)
	}
	l.AddObject(kg)
	return nil
}

// Snapshot returns everything loaded so far as one snapshot, in a stable order.
func (l *Loader) Snapshot() *guard.Snapshot {
	s := &guard.Snapshot{}
	keys := make([]string, 0, len(l.objs))
	for k := range l.objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if n, ok := l.objs[k].(node); ok {
			if s.NodeLabels == nil {
				s.NodeLabels = map[string]map[string]string{}
			}
			s.NodeLabels[n.name] = n.labels
			continue
		}
		s.Add(l.objs[k])
	}
	return s
}
