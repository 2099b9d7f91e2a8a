package guard

import (
	"fmt"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkGateway is check 6. istiod matches a Gateway's selector against pods in every namespace (unless
// PILOT_SCOPE_GATEWAY_TO_NAMESPACE is set), so the usual Gateway in an application namespace served by
// the ingress pods in istio-system is fine.
func checkGateway(x *index, gw *networking.Gateway) []Finding {
	sel := gw.Spec.Selector
	if len(sel) == 0 {
		return nil
	}
	res := Resource{Kind: KindGateway, Namespace: gw.Namespace, Name: gw.Name}
	var pods []Workload
	for _, ns := range sortedKeys(x.workloads) {
		for _, w := range x.workloads[ns] {
			if selects(sel, w.Labels) {
				pods = append(pods, w)
			}
		}
	}
	if len(pods) == 0 {
		return []Finding{{Code: CodeGatewaySelectsNoPods, Severity: SeverityWarning, Resource: res, Field: "spec.selector",
			Message: fmt.Sprintf("selector %s matches no pod in any namespace", formatLabels(sel))}}
	}
	var svcs []*corev1.Service
	for _, svcList := range x.services {
		for _, s := range svcList {
			if selectsAny(s, pods) {
				svcs = append(svcs, s)
			}
		}
	}
	if len(svcs) == 0 {
		return nil // pods reached without a Service (hostPort, hostNetwork): nothing to compare with
	}
	var out []Finding
	for i, srv := range gw.Spec.Servers {
		if srv.Port == nil || exposes(svcs, srv.Port.Number) {
			continue
		}
		out = append(out, Finding{Code: CodeGatewayPortNotExposed, Severity: SeverityWarning, Resource: res,
			Field:   fmt.Sprintf("spec.servers[%d].port.number", i),
			Message: fmt.Sprintf("port %d is neither a port nor a targetPort of the Services of pods %s", srv.Port.Number, formatLabels(sel))})
	}
	return out
}

func selectsAny(s *corev1.Service, pods []Workload) bool {
	for _, p := range pods {
		if p.Namespace == s.Namespace && selects(s.Spec.Selector, p.Labels) {
			return true
		}
	}
	return false
}

// exposes reports whether port is a Service port or targetPort. Accepting the Service port too follows
// what users write (Gateway port 80 behind Service 80→8080) and avoids a warning istiod would not act on.
func exposes(svcs []*corev1.Service, port uint32) bool {
	for _, s := range svcs {
		for _, p := range s.Spec.Ports {
			if uint32(p.Port) == port {
				return true
			}
			switch {
			case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "":
				return true // a named container port we cannot resolve without the pod spec
			case p.TargetPort.IntVal != 0 && uint32(p.TargetPort.IntVal) == port:
				return true
			}
		}
	}
	return false
}
