package guard

import (
	"strings"
	"sync"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// Snapshot is every object the checks look at. Fronts fill it from a cluster cache, an admission request
// plus the cache, or files. A Snapshot must not be changed after its first use: lookups are indexed once.
// Only Live changes a snapshot after that, keeping its index in step.
type Snapshot struct {
	Services         []*corev1.Service
	ServiceEntries   []*networking.ServiceEntry
	Gateways         []*networking.Gateway
	VirtualServices  []*networking.VirtualService
	DestinationRules []*networking.DestinationRule
	// KubeGateways are Gateway API Gateways, which a VirtualService may also bind to.
	KubeGateways []KubeGateway
	// Workloads are Pods, or offline the pod templates of Deployments and the like standing in for them.
	Workloads []Workload
	// NodeLabels holds the topology labels of each node by name; istiod adds them to a pod's endpoints.
	NodeLabels map[string]map[string]string

	once sync.Once
	idx  *index
}

// Workload is what the checks need of a Pod: where it runs and its labels.
type Workload struct {
	// Kind is "Pod", or the kind of the workload whose pod template stands in for pods.
	Kind      string
	Namespace string
	Name      string
	Labels    map[string]string
	NodeName  string
}

// KubeGateway is what the checks need of a gateway.networking.k8s.io Gateway.
type KubeGateway struct {
	Namespace string
	Name      string
	// Hostnames are the listeners' hostnames; a listener without one accepts any host ("*").
	Hostnames []string
}

// topologyLabels are node labels that istiod copies onto endpoints, so a subset may select on them.
var topologyLabels = []string{"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone", "kubernetes.io/hostname"}

type index struct {
	services  map[string][]*corev1.Service // by FQDN
	seExact   map[string][]seHost          // by host
	seWild    []seHost                     // hosts starting with "*"
	gateways  map[string]*networking.Gateway
	kgateways map[string]*KubeGateway
	gwNames   map[string][]string                      // namespace → Gateway names, for did-you-mean
	svcNames  map[string][]string                      // namespace → Service names, for did-you-mean
	drs       map[string][]*networking.DestinationRule // by resolved host
	drWild    []*networking.DestinationRule            // hosts starting with "*"
	workloads map[string][]Workload                    // by namespace, labels already carrying node topology
	svcByNs   map[string][]*corev1.Service             // by namespace

	memoMu sync.Mutex
	gwPods map[string]*selectedPods // by selectorKey, filled as Gateways are checked; reset when Services or workloads change
}

type seHost struct {
	host string
	se   *networking.ServiceEntry
}

// Add appends obj to the list of its kind; it reports false for an object the guard does not read.
// Node labels are set on NodeLabels by the caller, since nodes are not objects of the snapshot.
func (s *Snapshot) Add(obj any) bool {
	switch o := obj.(type) {
	case *corev1.Service:
		s.Services = append(s.Services, o)
	case *networking.ServiceEntry:
		s.ServiceEntries = append(s.ServiceEntries, o)
	case *networking.Gateway:
		s.Gateways = append(s.Gateways, o)
	case *networking.VirtualService:
		s.VirtualServices = append(s.VirtualServices, o)
	case *networking.DestinationRule:
		s.DestinationRules = append(s.DestinationRules, o)
	case Workload:
		s.Workloads = append(s.Workloads, o)
	case KubeGateway:
		s.KubeGateways = append(s.KubeGateways, o)
	default:
		return false
	}
	return true
}

func (s *Snapshot) index(o Options) *index {
	s.once.Do(func() { s.idx = buildIndex(s, o) })
	return s.idx
}

func buildIndex(s *Snapshot, o Options) *index {
	x := &index{
		services: map[string][]*corev1.Service{}, seExact: map[string][]seHost{}, gateways: map[string]*networking.Gateway{},
		kgateways: map[string]*KubeGateway{}, gwNames: map[string][]string{}, svcNames: map[string][]string{}, drs: map[string][]*networking.DestinationRule{}, workloads: map[string][]Workload{},
		svcByNs: map[string][]*corev1.Service{},
	}
	for _, svc := range s.Services {
		f := serviceFQDN(svc.Name, svc.Namespace, o.ClusterDomain)
		x.services[f] = append(x.services[f], svc)
		x.svcNames[svc.Namespace] = append(x.svcNames[svc.Namespace], svc.Name)
		x.svcByNs[svc.Namespace] = append(x.svcByNs[svc.Namespace], svc)
	}
	for _, se := range s.ServiceEntries {
		for _, h := range se.Spec.Hosts {
			h = resolveHost(h, se.Namespace, o.ClusterDomain)
			if strings.HasPrefix(h, "*") {
				x.seWild = append(x.seWild, seHost{h, se})
			} else {
				x.seExact[h] = append(x.seExact[h], seHost{h, se})
			}
		}
	}
	for _, dr := range s.DestinationRules {
		if h := resolveHost(dr.Spec.Host, dr.Namespace, o.ClusterDomain); strings.HasPrefix(h, "*") {
			x.drWild = append(x.drWild, dr)
		} else {
			x.drs[h] = append(x.drs[h], dr)
		}
	}
	for _, gw := range s.Gateways {
		x.gateways[gw.Namespace+"/"+gw.Name] = gw
		x.gwNames[gw.Namespace] = append(x.gwNames[gw.Namespace], gw.Name)
	}
	for i := range s.KubeGateways {
		kg := &s.KubeGateways[i]
		x.kgateways[kg.Namespace+"/"+kg.Name] = kg
		x.gwNames[kg.Namespace] = append(x.gwNames[kg.Namespace], kg.Name)
	}
	for _, w := range s.Workloads {
		x.workloads[w.Namespace] = append(x.workloads[w.Namespace], withTopology(w, s.NodeLabels[w.NodeName]))
	}
	return x
}

// SelectsOnTopology reports whether sel names a node topology label, which a pod matches through the
// labels of its node.
func SelectsOnTopology(sel map[string]string) bool {
	for _, k := range topologyLabels {
		if _, ok := sel[k]; ok {
			return true
		}
	}
	return false
}

// withTopology returns w with the topology labels of its node added under its own labels.
func withTopology(w Workload, node map[string]string) Workload {
	if len(node) == 0 {
		return w
	}
	merged := make(map[string]string, len(w.Labels)+len(topologyLabels))
	for _, k := range topologyLabels {
		// An empty topology value is no locality at all: istiod does not match on it.
		if v := node[k]; v != "" {
			merged[k] = v
		}
	}
	for k, v := range w.Labels {
		merged[k] = v
	}
	w.Labels = merged
	return w
}

// selects reports whether every key of sel is in labels with the same value. An empty selector selects
// nothing, as with Istio workload selectors.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
