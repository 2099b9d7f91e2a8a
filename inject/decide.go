package inject

import (
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
	case in.userProxy(pod, st):
		return false, SkipUserProxy
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

func ptrBool(b bool) *bool { return &b }
