package guard

import (
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// Dependents lists the VirtualServices and DestinationRules of the snapshot that reference target, a
// *networking.Gateway or a *corev1.Service: what breaks if target is deleted. Wildcard hosts are not
// counted, since another Service may still satisfy them.
func Dependents(s *Snapshot, o Options, target any) []Resource {
	o = o.withDefaults()
	var out []Resource
	switch t := target.(type) {
	case *networking.Gateway:
		want := t.Namespace + "/" + t.Name
		for _, vs := range s.VirtualServices {
			for _, ref := range GatewayRefs(vs) {
				if ref == want {
					out = append(out, Resource{Kind: KindVirtualService, Namespace: vs.Namespace, Name: vs.Name})
					break
				}
			}
		}
	case *corev1.Service:
		want := serviceFQDN(t.Name, t.Namespace, o.ClusterDomain)
		for _, vs := range s.VirtualServices {
			for _, h := range DestinationHosts(vs, o) {
				if h == want {
					out = append(out, Resource{Kind: KindVirtualService, Namespace: vs.Namespace, Name: vs.Name})
					break
				}
			}
		}
		for _, dr := range s.DestinationRules {
			if DestinationRuleHost(dr, o) == want {
				out = append(out, Resource{Kind: KindDestinationRule, Namespace: dr.Namespace, Name: dr.Name})
			}
		}
	}
	return out
}

// GatewayRefs returns every Gateway a VirtualService names, as "ns/name", without "mesh" and duplicates.
// The reconciler indexes VirtualServices by these.
func GatewayRefs(vs *networking.VirtualService) []string {
	var refs []string
	add := func(list []string) {
		for _, g := range list {
			r := parseGatewayRef(g, vs.Namespace)
			if r.mesh {
				continue
			}
			if s := r.String(); !contains(refs, s) {
				refs = append(refs, s)
			}
		}
	}
	add(vs.Spec.Gateways)
	for _, h := range vs.Spec.Http {
		for _, m := range h.Match {
			add(m.Gateways)
		}
	}
	for _, t := range vs.Spec.Tls {
		for _, m := range t.Match {
			add(m.Gateways)
		}
	}
	for _, t := range vs.Spec.Tcp {
		for _, m := range t.Match {
			add(m.Gateways)
		}
	}
	return refs
}

// DestinationHosts returns the resolved hosts of every route and mirror destination of a VirtualService,
// without duplicates. The reconciler indexes VirtualServices by these.
func DestinationHosts(vs *networking.VirtualService, o Options) []string {
	o = o.withDefaults()
	var hosts []string
	add := func(h string) {
		if h == "" {
			return
		}
		if h = resolveHost(h, vs.Namespace, o.ClusterDomain); !contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	for _, r := range vs.Spec.Http {
		for _, d := range r.Route {
			add(d.GetDestination().GetHost())
		}
		add(r.GetMirror().GetHost())
		for _, m := range r.Mirrors {
			add(m.GetDestination().GetHost())
		}
	}
	for _, r := range vs.Spec.Tls {
		for _, d := range r.Route {
			add(d.GetDestination().GetHost())
		}
	}
	for _, r := range vs.Spec.Tcp {
		for _, d := range r.Route {
			add(d.GetDestination().GetHost())
		}
	}
	return hosts
}

// DestinationRuleHost returns a DestinationRule's resolved host.
func DestinationRuleHost(dr *networking.DestinationRule, o Options) string {
	return resolveHost(dr.Spec.Host, dr.Namespace, o.withDefaults().ClusterDomain)
}

// ServiceHost returns the host a Service is known by in the mesh.
func ServiceHost(svc *corev1.Service, o Options) string {
	return serviceFQDN(svc.Name, svc.Namespace, o.withDefaults().ClusterDomain)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ResolveHost expands a host as written in an object of namespace ns, the way the checks do.
func ResolveHost(h, ns string, o Options) string {
	return resolveHost(h, ns, o.withDefaults().ClusterDomain)
}
