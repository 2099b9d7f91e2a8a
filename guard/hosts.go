package guard

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationExportTo is the Service annotation istiod reads as the Service's exportTo.
const AnnotationExportTo = "networking.istio.io/exportTo"

func serviceFQDN(name, ns, domain string) string { return name + "." + ns + ".svc." + domain }

// resolveHost expands a host the way istiod does: a short name (no dot) is a Service in the referring
// object's namespace; a name with a dot is taken literally, so "reviews.default" is not expanded.
func resolveHost(h, ns, domain string) string {
	if h == "" || h == "*" || strings.Contains(h, ".") {
		return h
	}
	return serviceFQDN(h, ns, domain)
}

// hostMatches reports whether the concrete or wildcard host h is covered by pattern p ("*.example.com"
// covers "a.example.com" and "*.a.example.com"; "*" covers everything).
func hostMatches(p, h string) bool {
	if p == h || p == "*" {
		return true
	}
	if strings.HasPrefix(p, "*") {
		suffix := p[1:]
		if strings.HasPrefix(h, "*") {
			return strings.HasSuffix(h[1:], suffix)
		}
		return strings.HasSuffix(h, suffix)
	}
	return false
}

// hostsIntersect reports whether two host patterns can match a common host, which is how istiod binds
// a VirtualService host to a Gateway server host.
func hostsIntersect(a, b string) bool { return hostMatches(a, b) || hostMatches(b, a) }

// visible reports whether an object in namespace ns with the given exportTo is visible from namespace from.
// An empty exportTo means every namespace, as istiod's default.
func visible(exportTo []string, ns, from string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		switch strings.TrimSpace(e) {
		case "*":
			return true
		case ".":
			if ns == from {
				return true
			}
		case from:
			return true
		}
	}
	return false
}

func serviceExportTo(svc *corev1.Service) []string {
	v, ok := svc.Annotations[AnnotationExportTo]
	if !ok {
		return nil
	}
	out := strings.Split(v, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

// effectiveNamespaces are the namespaces whose sidecars apply an object exported to exportTo from ns:
// the destinations it names must be visible from each. "*" (or nothing) is checked from ns itself,
// since a destination that every namespace may need cannot be known in advance.
func effectiveNamespaces(exportTo []string, ns string) []string {
	if len(exportTo) == 0 || slices.Contains(exportTo, "*") {
		return []string{ns}
	}
	var out []string
	for _, e := range exportTo {
		switch e {
		case ".":
			e = ns
		case "~", "":
			continue
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// target is what a host resolved to: Services and ServiceEntries, visible from the namespace asked.
type target struct {
	services []*corev1.Service
	entries  []seHost
}

func (t target) found() bool { return len(t.services) > 0 || len(t.entries) > 0 }

// lookupHost finds what the resolved host h names from namespace from. A wildcard h matches every
// Service and ServiceEntry host it covers.
func (x *index) lookupHost(h, from string) target {
	var t target
	if strings.HasPrefix(h, "*") {
		for f, svcs := range x.services {
			if hostMatches(h, f) {
				t.services = appendVisibleServices(t.services, svcs, from)
			}
		}
		for _, hs := range x.seExact {
			for _, e := range hs {
				if hostMatches(h, e.host) && visible(e.se.Spec.ExportTo, e.se.Namespace, from) {
					t.entries = append(t.entries, e)
				}
			}
		}
	} else {
		t.services = appendVisibleServices(nil, x.services[h], from)
		for _, e := range x.seExact[h] {
			if visible(e.se.Spec.ExportTo, e.se.Namespace, from) {
				t.entries = append(t.entries, e)
			}
		}
	}
	for _, e := range x.seWild {
		if hostMatches(e.host, h) || hostMatches(h, e.host) {
			if visible(e.se.Spec.ExportTo, e.se.Namespace, from) {
				t.entries = append(t.entries, e)
			}
		}
	}
	return t
}

func appendVisibleServices(dst, svcs []*corev1.Service, from string) []*corev1.Service {
	for _, s := range svcs {
		if visible(serviceExportTo(s), s.Namespace, from) {
			dst = append(dst, s)
		}
	}
	return dst
}

// gatewayRef is a parsed VirtualService gateway reference.
type gatewayRef struct {
	namespace, name string
	mesh, internal  bool
}

// parseGatewayRef understands every form istiod accepts: "mesh", "name" (the VirtualService's
// namespace), "ns/name", "./name", and the legacy "name.ns.svc.cluster.local".
func parseGatewayRef(ref, vsNamespace string) gatewayRef {
	if ref == "mesh" {
		return gatewayRef{mesh: true}
	}
	r := gatewayRef{internal: strings.Contains(ref, "~")}
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		if ns == "." {
			ns = vsNamespace
		}
		r.namespace, r.name = ns, name
		return r
	}
	if name, rest, ok := strings.Cut(ref, "."); ok {
		ns, _, _ := strings.Cut(rest, ".")
		r.namespace, r.name = ns, name
		return r
	}
	r.namespace, r.name = vsNamespace, ref
	return r
}

func (r gatewayRef) String() string { return r.namespace + "/" + r.name }

// suggestService proposes a Service near the missing in-cluster host full (as written: orig), in the
// same form the user wrote it.
func (x *index) suggestService(orig, full, domain string) (string, bool) {
	rest, ok := strings.CutSuffix(full, ".svc."+domain)
	if !ok {
		return "", false
	}
	name, ns, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	s, ok := closest(name, x.svcNames[ns])
	if !ok {
		return "", false
	}
	if !strings.Contains(orig, ".") {
		return s, true
	}
	return serviceFQDN(s, ns, domain), true
}
