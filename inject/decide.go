package inject

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshwarden/meshwarden/config"
)

// Namespace is what the decision needs to know about the pod's namespace.
type Namespace struct {
	Name   string
	Labels map[string]string
}

// systemNamespaces are never injected: the cluster's own machinery must never wait on meshwarden.
var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// selectors are the config's label selectors, compiled once.
type selectors struct {
	never, always []labels.Selector
}

func compileSelectors(in config.Injection) (selectors, error) {
	var s selectors
	for i := range in.NeverInjectSelector {
		sel, err := metav1.LabelSelectorAsSelector(&in.NeverInjectSelector[i])
		if err != nil {
			return s, err
		}
		s.never = append(s.never, sel)
	}
	for i := range in.AlwaysInjectSelector {
		sel, err := metav1.LabelSelectorAsSelector(&in.AlwaysInjectSelector[i])
		if err != nil {
			return s, err
		}
		s.always = append(s.always, sel)
	}
	return s, nil
}

// decide says whether the pod is injected and why. Order matters and is documented in the README:
// safety skips first, then the pod's own word, then the namespace and the config.
// Decide is the injection decision for a pod (JSON) in a namespace, with its reason: the one the
// webhook and `meshwarden inject` make, for the fronts that only ask (the reconciler's sidecar
// check). Invalid annotations do not change it; they are denied only when the pod is injected.
func (in *Injector) Decide(podJSON []byte, ns Namespace) (bool, Reason, error) {
	pod, err := decodePod(podJSON)
	if err != nil {
		return false, "", fmt.Errorf("%w: %v", ErrNotAPod, err)
	}
	if ns.Name == "" {
		ns.Name = pod.namespace
	}
	ov, _ := ParseAnnotations(pod.annotations, annotationsPath)
	st, _ := parseStatus(pod.annotations[AnnotationStatus])
	inject, reason := in.decide(pod, ns, ov, st)
	return inject, reason, nil
}

// DecisionAnnotations are the annotations Decide reads; a cache of pods that keeps only these
// (the reconciler's) still decides as the webhook did.
func DecisionAnnotations() []string {
	keys := []string{AnnotationStatus, LabelInject}
	for k := range otherMeshAnnotations {
		keys = append(keys, k)
	}
	return keys
}

func (in *Injector) decide(pod *PodView, ns Namespace, ov Overrides, st *Status) (bool, Reason) {
	switch {
	case len(pod.Spec.Containers) == 0:
		return false, SkipNoContainers
	case pod.Spec.HostNetwork:
		return false, SkipHostNetwork
	case systemNamespaces[ns.Name]:
		return false, SkipSystemNamespace
	case ns.Name == in.cfg.Namespace:
		return false, SkipOwnNamespace
	case in.otherMesh(pod, st):
		return false, SkipOtherMesh
	case in.userProxy(pod, st):
		return false, SkipUserProxy
	case pod.windows():
		return false, SkipWindows
	}
	// The label is the documented switch; the annotation of the same name is accepted as a fallback.
	explicit := ov.Inject
	switch pod.labels[LabelInject] {
	case "true":
		explicit = ptrBool(true)
	case "false":
		explicit = ptrBool(false)
	}
	if explicit != nil {
		if *explicit {
			return true, InjectPodLabel
		}
		return false, SkipPodOptOut
	}
	if ns.Labels[NamespaceLabel] == "disabled" {
		return false, SkipNamespaceDisabled
	}
	podLabels := labels.Set(pod.labels)
	for _, s := range in.sel.never {
		if s.Matches(podLabels) {
			return false, SkipNeverSelector
		}
	}
	for _, s := range in.sel.always {
		if s.Matches(podLabels) {
			return true, InjectAlwaysSelector
		}
	}
	if ns.Labels[NamespaceLabel] != "enabled" {
		return false, SkipNamespaceNotEnabled
	}
	if in.cfg.Injection.DefaultPolicy == config.PolicyDisabled {
		return false, SkipPolicyDisabled
	}
	return true, InjectNamespaceEnabled
}

// userProxy is true when the pod has a container named like ours that an earlier injection did not add.
func (in *Injector) userProxy(pod *PodView, st *Status) bool {
	ours := statusOrEmpty(st)
	name := ProxyNameFor(in.cfg.Injection.Profile)
	if indexOf(pod.Spec.Containers, name) >= 0 && indexOfName(ours.Containers, name) < 0 {
		return true
	}
	return indexOf(pod.Spec.InitContainers, name) >= 0 && indexOfName(ours.InitContainers, name) < 0
}

// Marks another mesh's injector leaves on a pod it injected: its injection record, or its proxy and
// capture containers. An explicit opt-in does not override them: never two meshes in one pod.
var (
	otherMeshAnnotations = map[string]string{ // key → value that marks it ("" for any)
		"sidecar.istio.io/status":                    "",
		"linkerd.io/proxy-version":                   "",
		"kuma.io/sidecar-injected":                   "true",
		"consul.hashicorp.com/connect-inject-status": "injected",
	}
	otherMeshContainers = map[string]bool{
		"istio-init": true, "istio-validation": true, "linkerd-proxy": true, "linkerd-init": true,
		"linkerd-network-validator": true, "kuma-sidecar": true, "kuma-init": true,
		"consul-dataplane": true, "consul-connect-inject-init": true,
	}
)

// otherMesh is true for a pod another mesh injected. Under the envoy profile an istio-proxy
// container is Istio's too; under the istio profile one meshwarden did not add is the user's
// (userProxy), unless Istio's record says otherwise.
func (in *Injector) otherMesh(pod *PodView, st *Status) bool {
	for k, v := range otherMeshAnnotations {
		if got, ok := pod.annotations[k]; ok && (v == "" || got == v) {
			return true
		}
	}
	ours := statusOrEmpty(st)
	for _, list := range [][]containerItem{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			theirs := otherMeshContainers[c.Name] || (c.Name == IstioProxyName && in.cfg.Injection.Profile != config.ProfileIstio)
			if theirs && indexOfName(ours.InitContainers, c.Name) < 0 && indexOfName(ours.Containers, c.Name) < 0 {
				return true
			}
		}
	}
	return false
}

func ptrBool(b bool) *bool { return &b }
