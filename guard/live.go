package guard

import (
	"cmp"
	"slices"
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// Kinds that Live.Delete takes besides the checked kinds; a workload is deleted by its own kind ("Pod").
const (
	KindService      = "Service"
	KindServiceEntry = "ServiceEntry"
	KindNode         = "Node"
)

// Live is a Snapshot kept current one object at a time, for a front that follows a cluster: each
// change adjusts the snapshot's lists and index instead of rebuilding them, so that re-checking the
// dependents of one change costs what those checks cost. After any sequence of changes the snapshot
// equals one built from scratch from the same objects (sorted by namespace and name, as load.Loader
// builds them).
//
// Live is not safe for concurrent use, and its snapshot changes under Set and Delete: callers serialise
// changes with checks. KubeGateways are taken as they are in the first snapshot.
type Live struct {
	s *Snapshot
	x *index
	o Options
}

// NewLive takes ownership of s (its lists are sorted in place) and indexes it with o.
func NewLive(s *Snapshot, o Options) *Live {
	o = o.withDefaults()
	slices.SortStableFunc(s.Services, byKey(objKey[*corev1.Service]))
	slices.SortStableFunc(s.ServiceEntries, byKey(objKey[*networking.ServiceEntry]))
	slices.SortStableFunc(s.Gateways, byKey(objKey[*networking.Gateway]))
	slices.SortStableFunc(s.VirtualServices, byKey(objKey[*networking.VirtualService]))
	slices.SortStableFunc(s.DestinationRules, byKey(objKey[*networking.DestinationRule]))
	slices.SortStableFunc(s.Workloads, byKey(workloadKey))
	if s.NodeLabels == nil {
		s.NodeLabels = map[string]map[string]string{}
	}
	// Index the sorted lists even if s was checked before: Live keeps this index in step from now on.
	x := buildIndex(s, o)
	s.once.Do(func() {})
	s.idx = x
	return &Live{s: s, x: x, o: o}
}

// Snapshot is the current snapshot, for Check and CheckObject with the Options given to NewLive.
func (l *Live) Snapshot() *Snapshot { return l.s }

// Object returns the VirtualService, DestinationRule or Gateway of that kind, namespace and name, or
// nil when the snapshot holds none.
func (l *Live) Object(kind, namespace, name string) any {
	k := namespace + "/" + name
	var o any
	var ok bool
	switch kind {
	case KindVirtualService:
		o, ok = find(l.s.VirtualServices, k, objKey)
	case KindDestinationRule:
		o, ok = find(l.s.DestinationRules, k, objKey)
	case KindGateway:
		o, ok = find(l.s.Gateways, k, objKey)
	}
	if !ok {
		return nil
	}
	return o
}

// Set adds or replaces one object: a *corev1.Service, *networking.ServiceEntry, *networking.Gateway,
// *networking.VirtualService, *networking.DestinationRule or a Workload. Other types are ignored.
func (l *Live) Set(obj any) {
	switch o := obj.(type) {
	case *corev1.Service:
		l.Delete(KindService, o.Namespace, o.Name)
		l.addService(o)
	case *networking.ServiceEntry:
		l.Delete(KindServiceEntry, o.Namespace, o.Name)
		l.addServiceEntry(o)
	case *networking.Gateway:
		l.Delete(KindGateway, o.Namespace, o.Name)
		l.s.Gateways = insert(l.s.Gateways, o, objKey)
		l.x.gateways[o.Namespace+"/"+o.Name] = o
		l.gatewayNames(o.Namespace)
	case *networking.VirtualService:
		l.s.VirtualServices = put(l.s.VirtualServices, o, objKey)
	case *networking.DestinationRule:
		l.Delete(KindDestinationRule, o.Namespace, o.Name)
		l.s.DestinationRules = insert(l.s.DestinationRules, o, objKey)
		if h := resolveHost(o.Spec.Host, o.Namespace, l.o.ClusterDomain); strings.HasPrefix(h, "*") {
			l.x.drWild = insert(l.x.drWild, o, objKey)
		} else {
			l.x.drs[h] = insert(l.x.drs[h], o, objKey)
		}
	case Workload:
		l.Delete(o.Kind, o.Namespace, o.Name)
		l.s.Workloads = insert(l.s.Workloads, o, workloadKey)
		l.x.workloads[o.Namespace] = insert(l.x.workloads[o.Namespace], withTopology(o, l.s.NodeLabels[o.NodeName]), workloadKey)
		l.x.resetMemo()
	}
}

// SetNode adds or replaces a node's labels; the workloads on it take its topology labels.
func (l *Live) SetNode(name string, labels map[string]string) {
	l.s.NodeLabels[name] = labels
	l.renode(name)
}

// Delete removes the object of that kind (KindService, KindServiceEntry, KindGateway,
// KindVirtualService, KindDestinationRule, KindNode, or a workload's kind such as "Pod"), if present.
func (l *Live) Delete(kind, namespace, name string) {
	k := namespace + "/" + name
	switch kind {
	case KindService:
		old, ok := find(l.s.Services, k, objKey)
		if !ok {
			return
		}
		l.s.Services = remove(l.s.Services, k, objKey)
		f := serviceFQDN(old.Name, old.Namespace, l.o.ClusterDomain)
		setList(l.x.services, f, remove(l.x.services[f], k, objKey))
		setList(l.x.svcByNs, namespace, remove(l.x.svcByNs[namespace], k, objKey))
		setList(l.x.svcNames, namespace, remove(l.x.svcNames[namespace], name, ident))
		l.x.resetServices()
	case KindServiceEntry:
		old, ok := find(l.s.ServiceEntries, k, objKey)
		if !ok {
			return
		}
		l.s.ServiceEntries = remove(l.s.ServiceEntries, k, objKey)
		for _, h := range old.Spec.Hosts {
			if h = resolveHost(h, old.Namespace, l.o.ClusterDomain); !strings.HasPrefix(h, "*") {
				setList(l.x.seExact, h, remove(l.x.seExact[h], k, seKey))
			}
		}
		l.x.seWild = remove(l.x.seWild, k, seKey)
	case KindGateway:
		if _, ok := find(l.s.Gateways, k, objKey); !ok {
			return
		}
		l.s.Gateways = remove(l.s.Gateways, k, objKey)
		delete(l.x.gateways, k)
		l.gatewayNames(namespace)
	case KindVirtualService:
		l.s.VirtualServices = remove(l.s.VirtualServices, k, objKey)
	case KindDestinationRule:
		old, ok := find(l.s.DestinationRules, k, objKey)
		if !ok {
			return
		}
		l.s.DestinationRules = remove(l.s.DestinationRules, k, objKey)
		if h := resolveHost(old.Spec.Host, old.Namespace, l.o.ClusterDomain); strings.HasPrefix(h, "*") {
			l.x.drWild = remove(l.x.drWild, k, objKey)
		} else {
			setList(l.x.drs, h, remove(l.x.drs[h], k, objKey))
		}
	case KindNode:
		if _, ok := l.s.NodeLabels[name]; !ok {
			return
		}
		delete(l.s.NodeLabels, name)
		l.renode(name)
	default:
		wk := namespace + "/" + kind + "/" + name
		if _, ok := find(l.s.Workloads, wk, workloadKey); !ok {
			return
		}
		l.s.Workloads = remove(l.s.Workloads, wk, workloadKey)
		setList(l.x.workloads, namespace, remove(l.x.workloads[namespace], wk, workloadKey))
		l.x.resetMemo()
	}
}

func (l *Live) addService(svc *corev1.Service) {
	l.s.Services = insert(l.s.Services, svc, objKey)
	f := serviceFQDN(svc.Name, svc.Namespace, l.o.ClusterDomain)
	l.x.services[f] = insert(l.x.services[f], svc, objKey)
	l.x.svcByNs[svc.Namespace] = insert(l.x.svcByNs[svc.Namespace], svc, objKey)
	l.x.svcNames[svc.Namespace] = insert(l.x.svcNames[svc.Namespace], svc.Name, ident)
	l.x.resetServices()
}

func (l *Live) addServiceEntry(se *networking.ServiceEntry) {
	l.s.ServiceEntries = insert(l.s.ServiceEntries, se, objKey)
	for _, h := range se.Spec.Hosts {
		e := seHost{resolveHost(h, se.Namespace, l.o.ClusterDomain), se}
		if strings.HasPrefix(e.host, "*") {
			l.x.seWild = insert(l.x.seWild, e, seKey)
		} else {
			l.x.seExact[e.host] = insert(l.x.seExact[e.host], e, seKey)
		}
	}
}

// gatewayNames rebuilds the did-you-mean names of one namespace: its Gateways, then its KubeGateways,
// as buildIndex lists them.
func (l *Live) gatewayNames(ns string) {
	var names []string
	for _, gw := range l.s.Gateways {
		if gw.Namespace == ns {
			names = append(names, gw.Name)
		}
	}
	for _, kg := range l.s.KubeGateways {
		if kg.Namespace == ns {
			names = append(names, kg.Name)
		}
	}
	setList(l.x.gwNames, ns, names)
}

// renode re-derives the indexed labels of the workloads on a node whose labels changed.
func (l *Live) renode(node string) {
	for _, w := range l.s.Workloads {
		if w.NodeName != node {
			continue
		}
		ws := l.x.workloads[w.Namespace]
		if i, ok := slices.BinarySearchFunc(ws, workloadKey(w), byKeyTarget(workloadKey)); ok {
			ws[i] = withTopology(w, l.s.NodeLabels[node])
		}
	}
	l.x.resetMemo()
}

// resetMemo forgets what Gateway selectors select, after a workload or node change.
func (x *index) resetMemo() {
	x.memoMu.Lock()
	x.gwPods = nil
	x.memoMu.Unlock()
}

// resetServices forgets only which Services select the pods of Gateway selectors, after a Service change.
func (x *index) resetServices() {
	x.memoMu.Lock()
	for _, sp := range x.gwPods {
		sp.services = nil
	}
	x.memoMu.Unlock()
}

type meta interface {
	GetNamespace() string
	GetName() string
}

func objKey[T meta](o T) string     { return o.GetNamespace() + "/" + o.GetName() }
func workloadKey(w Workload) string { return w.Namespace + "/" + w.Kind + "/" + w.Name }
func seKey(e seHost) string         { return objKey(e.se) }
func ident(s string) string         { return s }

func byKey[T any](key func(T) string) func(a, b T) int {
	return func(a, b T) int { return cmp.Compare(key(a), key(b)) }
}

func byKeyTarget[T any](key func(T) string) func(T, string) int {
	return func(a T, k string) int { return cmp.Compare(key(a), k) }
}

// insert adds v after every element whose key is not greater, so equal keys keep their order of
// insertion (a ServiceEntry naming a host twice).
func insert[T any](s []T, v T, key func(T) string) []T {
	k := key(v)
	i := sort.Search(len(s), func(i int) bool { return key(s[i]) > k })
	return slices.Insert(s, i, v)
}

// put replaces the element with v's key, or inserts v.
func put[T any](s []T, v T, key func(T) string) []T {
	if i, ok := slices.BinarySearchFunc(s, key(v), byKeyTarget(key)); ok {
		s[i] = v
		return s
	}
	return insert(s, v, key)
}

// remove deletes every element with key k.
func remove[T any](s []T, k string, key func(T) string) []T {
	lo := sort.Search(len(s), func(i int) bool { return key(s[i]) >= k })
	hi := lo
	for hi < len(s) && key(s[hi]) == k {
		hi++
	}
	return slices.Delete(s, lo, hi)
}

func find[T any](s []T, k string, key func(T) string) (T, bool) {
	if i, ok := slices.BinarySearchFunc(s, k, byKeyTarget(key)); ok {
		return s[i], true
	}
	var zero T
	return zero, false
}

// setList sets m[k], dropping the entry when s is empty, as buildIndex never makes empty entries.
func setList[T any](m map[string][]T, k string, s []T) {
	if len(s) == 0 {
		delete(m, k)
		return
	}
	m[k] = s
}
