package inject

// Reason says why a pod was or was not injected, or why it was denied. Reasons are bounded, so they are
// safe as metric labels; each has one sentence for logs, Events and the CLI.
type Reason string

// Reasons to inject.
const (
	InjectPodLabel         Reason = "pod-opt-in"
	InjectAlwaysSelector   Reason = "always-inject-selector"
	InjectNamespaceEnabled Reason = "namespace-enabled"
)

// Reasons to skip.
const (
	SkipHostNetwork         Reason = "host-network"
	SkipSystemNamespace     Reason = "system-namespace"
	SkipOwnNamespace        Reason = "meshwarden-namespace"
	SkipUserProxy           Reason = "user-proxy-container"
	SkipOtherMesh           Reason = "other-mesh"
	SkipWindows             Reason = "windows"
	SkipPodOptOut           Reason = "pod-opt-out"
	SkipNamespaceDisabled   Reason = "namespace-disabled"
	SkipNamespaceNotEnabled Reason = "namespace-not-enabled"
	SkipNeverSelector       Reason = "never-inject-selector"
	SkipPolicyDisabled      Reason = "policy-disabled"
	SkipNoPod               Reason = "not-a-workload"
	SkipNoContainers        Reason = "no-containers"
	SkipUnsupportedKind     Reason = "unsupported-kind"
)

// Reasons to deny.
const (
	DenyInvalidAnnotation Reason = "invalid-annotation"
	DenyUnknownTemplate   Reason = "unknown-template"
	DenyConflict          Reason = "conflict"
	DenyRender            Reason = "render-failed"
)

var sentences = map[Reason]string{
	InjectPodLabel:         "The pod is labelled sidecar.meshwarden.io/inject=true.",
	InjectAlwaysSelector:   "The pod matches the config's alwaysInjectSelector.",
	InjectNamespaceEnabled: "The namespace is labelled meshwarden.io/inject=enabled and the default policy is enabled.",

	SkipHostNetwork:         "The pod uses the host network, where capturing traffic would capture the node's.",
	SkipSystemNamespace:     "The pod is in a Kubernetes system namespace, which is never injected.",
	SkipOwnNamespace:        "The pod is in meshwarden's own namespace, which is never injected.",
	SkipUserProxy:           "The pod already has a container named like the proxy that meshwarden did not add.",
	SkipOtherMesh:           "The pod already carries another mesh's proxy or injection record (Istio, Linkerd, Kuma, Consul); two proxies would fight over its traffic.",
	SkipWindows:             "The pod runs on Windows (spec.os.name, or a node selector or required affinity for kubernetes.io/os=windows), where meshwarden's proxy and capture cannot run.",
	SkipPodOptOut:           "The pod is labelled sidecar.meshwarden.io/inject=false.",
	SkipNamespaceDisabled:   "The namespace is labelled meshwarden.io/inject=disabled.",
	SkipNamespaceNotEnabled: "The namespace is not labelled meshwarden.io/inject=enabled.",
	SkipNeverSelector:       "The pod matches the config's neverInjectSelector.",
	SkipPolicyDisabled:      "The default policy is disabled and the pod does not opt in with sidecar.meshwarden.io/inject=true.",
	SkipNoPod:               "The object has no pod template, so there is nothing to inject.",
	SkipNoContainers:        "The pod has no containers; the API server refuses such a pod on its own.",
	SkipUnsupportedKind:     "meshwarden injects Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs and CronJobs; this kind passes through unchanged.",

	DenyInvalidAnnotation: "A meshwarden annotation on the pod is unknown or has an invalid value.",
	DenyUnknownTemplate:   "The pod names an injection template that does not exist.",
	DenyConflict:          "The pod already has a volume or init container with a name meshwarden needs.",
	DenyRender:            "The injection template failed to render for this pod.",
}

// Sentence is the one-sentence explanation of the reason.
func (r Reason) Sentence() string { return sentences[r] }

// AllReasons lists every reason, for pre-initialising metric series.
func AllReasons() []Reason {
	out := make([]Reason, 0, len(sentences))
	for r := range sentences {
		out = append(out, r)
	}
	return out
}
