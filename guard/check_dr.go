package guard

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// checkDestinationRule is checks 2 and 5.
func checkDestinationRule(x *index, o Options, dr *networking.DestinationRule) []Finding {
	res := Resource{Kind: KindDestinationRule, Namespace: dr.Namespace, Name: dr.Name}
	var out []Finding
	host := resolveHost(dr.Spec.Host, dr.Namespace, o.ClusterDomain)
	if host == "" {
		return nil // schema validation rejects an empty host; nothing to resolve
	}
	t := x.lookupHost(host, dr.Namespace)
	if !t.found() {
		msg := fmt.Sprintf("host %q matches no Service or ServiceEntry", dr.Spec.Host)
		if s, ok := x.suggestService(dr.Spec.Host, host, o.ClusterDomain); ok {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return []Finding{{Code: CodeDestinationRuleHostNotFound, Severity: o.MissingDestinationRuleHost, Resource: res, Field: "spec.host", Message: msg}}
	}
	if strings.HasPrefix(host, "*") {
		return nil // a wildcard rule's subsets apply to many Services; none has to carry them all
	}
	var svcs []*corev1.Service
	for _, s := range t.services {
		if len(s.Spec.Selector) > 0 {
			svcs = append(svcs, s)
		}
	}
	if len(svcs) == 0 {
		return nil // ServiceEntry or selector-less Service: endpoints are not pods we can see
	}
	for i, s := range dr.Spec.Subsets {
		if len(s.Labels) == 0 || subsetSelectsPod(x, svcs, s.Labels) {
			continue
		}
		out = append(out, Finding{
			Code: CodeSubsetSelectsNoPods, Severity: SeverityWarning, Resource: res, Field: fmt.Sprintf("spec.subsets[%d].labels", i),
			Message: fmt.Sprintf("subset %q (%s) selects no pod of Service %s/%s", s.Name, formatLabels(s.Labels), svcs[0].Namespace, svcs[0].Name),
		})
	}
	return out
}

func subsetSelectsPod(x *index, svcs []*corev1.Service, labels map[string]string) bool {
	for _, svc := range svcs {
		for _, w := range x.workloads[svc.Namespace] {
			if selects(svc.Spec.Selector, w.Labels) && selects(labels, w.Labels) {
				return true
			}
		}
	}
	return false
}

func formatLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}
