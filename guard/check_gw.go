package guard

import (
	"fmt"
	"strings"

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
	pods, svcs := x.gatewayPods(sel)
	if !pods {
		return []Finding{{Code: CodeGatewaySelectsNoPods, Severity: SeverityWarning, Resource: res, Field: "spec.selector",
			Message: fmt.Sprintf("selector %s matches no pod in any namespace", formatLabels(sel))}}
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

// selectedPods is what the Gateway check needs to know about one selector: the pods it selects, by
// namespace, and the Services that select at least one of them (nil until derived; a Service change
// drops only these).
type selectedPods struct {
	byNs     map[string][]Workload
	services *[]*corev1.Service
}

// gatewayPods answers for one selector, once per index: Gateways share a handful of selectors (the
// ingress pods), so 500 Gateways cost a handful of scans of the workloads. Only Services in the
// namespaces of the selected pods can select them.
func (x *index) gatewayPods(sel map[string]string) (pods bool, services []*corev1.Service) {
	key := selectorKey(sel)
	x.memoMu.Lock()
	defer x.memoMu.Unlock()
	sp, ok := x.gwPods[key]
	if !ok {
		sp = &selectedPods{byNs: map[string][]Workload{}}
		for ns, ws := range x.workloads {
			for _, w := range ws {
				if selects(sel, w.Labels) {
					sp.byNs[ns] = append(sp.byNs[ns], w)
				}
			}
		}
		if x.gwPods == nil {
			x.gwPods = map[string]*selectedPods{}
		}
		x.gwPods[key] = sp
	}
	if sp.services == nil {
		var svcs []*corev1.Service
		for _, ns := range sortedKeys(sp.byNs) {
			for _, s := range x.svcByNs[ns] {
				if selectsAny(s, sp.byNs[ns]) {
					svcs = append(svcs, s)
				}
			}
		}
		sp.services = &svcs
	}
	return len(sp.byNs) > 0, *sp.services
}

// selectorKey names a selector without ambiguity, whatever its keys and values hold.
func selectorKey(sel map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(sel) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(sel[k])
		b.WriteByte(0)
	}
	return b.String()
}

func selectsAny(s *corev1.Service, pods []Workload) bool {
	for _, p := range pods {
		if selects(s.Spec.Selector, p.Labels) {
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
