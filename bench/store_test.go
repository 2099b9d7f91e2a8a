package bench

import (
	"context"
	"fmt"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/reconciler"
)

// store stands in for the reconciler's controller-runtime cache without an API server: one client-go
// Indexer per kind (what an informer keeps), objects put through the transforms the manager is given
// (reconciler.CacheByObject, managed fields stripped from the rest), the same field indexes as
// reconciler.SetupWithManager, and a client.Reader that lists as the cache reader does.
type store struct {
	opts  guard.Options
	kinds map[string]toolscache.Indexer
}

const allNamespaces = "__all_namespaces" // controller-runtime's key for cluster-wide field index values

func fieldIndex(name string, values func(any) []string) toolscache.Indexers {
	return toolscache.Indexers{"field:" + name: func(obj any) ([]string, error) {
		ns := obj.(client.Object).GetNamespace()
		var out []string
		for _, v := range values(obj) {
			out = append(out, allNamespaces+"/"+v, ns+"/"+v)
		}
		return out, nil
	}}
}

func newStore(o guard.Options) *store {
	s := &store{opts: o, kinds: map[string]toolscache.Indexer{}}
	idx := func(more ...toolscache.Indexers) toolscache.Indexer {
		all := toolscache.Indexers{toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc}
		for _, m := range more {
			for k, v := range m {
				all[k] = v
			}
		}
		return toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, all)
	}
	s.kinds["Service"] = idx()
	s.kinds["Pod"] = idx()
	s.kinds["Node"] = idx()
	s.kinds["ServiceEntry"] = idx()
	s.kinds["Gateway"] = idx()
	s.kinds["VirtualService"] = idx(
		fieldIndex(reconciler.IndexGateway, func(o any) []string { return guard.GatewayRefs(o.(*networking.VirtualService)) }),
		fieldIndex(reconciler.IndexHost, func(o any) []string { return guard.DestinationHosts(o.(*networking.VirtualService), s.opts) }),
	)
	s.kinds["DestinationRule"] = idx(fieldIndex(reconciler.IndexHost, func(o any) []string {
		return []string{guard.DestinationRuleHost(o.(*networking.DestinationRule), s.opts)}
	}))
	return s
}

// add puts an object in as an informer would: transform first.
func (s *store) add(obj client.Object) error {
	var t toolscache.TransformFunc = crcache.TransformStripManagedFields()
	for o, by := range reconciler.CacheByObject() {
		if fmt.Sprintf("%T", o) == fmt.Sprintf("%T", obj) && by.Transform != nil {
			t = by.Transform
		}
	}
	out, err := t(obj)
	if err != nil {
		return err
	}
	return s.kinds[kindOf(obj)].Add(out)
}

func (s *store) delete(obj client.Object) error { return s.kinds[kindOf(obj)].Delete(obj) }

func kindOf(obj any) string {
	switch obj.(type) {
	case *corev1.Service, *corev1.ServiceList:
		return "Service"
	case *corev1.Pod, *corev1.PodList:
		return "Pod"
	case *corev1.Node, *corev1.NodeList:
		return "Node"
	case *networking.ServiceEntry, *networking.ServiceEntryList:
		return "ServiceEntry"
	case *networking.Gateway, *networking.GatewayList:
		return "Gateway"
	case *networking.VirtualService, *networking.VirtualServiceList:
		return "VirtualService"
	case *networking.DestinationRule, *networking.DestinationRuleList:
		return "DestinationRule"
	}
	panic(fmt.Sprintf("bench store: unexpected type %T", obj))
}

// Get copies as the cache reader does: deep, or shallow with client.UnsafeDisableDeepCopy.
func (s *store) Get(_ context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	k := key.Name
	if key.Namespace != "" {
		k = key.Namespace + "/" + key.Name
	}
	item, ok, err := s.kinds[kindOf(obj)].GetByKey(k)
	if err != nil {
		return err
	}
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: kindOf(obj)}, key.Name)
	}
	gopts := (&client.GetOptions{}).ApplyOptions(opts)
	shallow := gopts.UnsafeDisableDeepCopy != nil && *gopts.UnsafeDisableDeepCopy
	switch o := obj.(type) {
	case *networking.VirtualService:
		copyInto(item.(*networking.VirtualService), o, shallow)
	case *networking.DestinationRule:
		copyInto(item.(*networking.DestinationRule), o, shallow)
	case *networking.Gateway:
		copyInto(item.(*networking.Gateway), o, shallow)
	case *networking.ServiceEntry:
		copyInto(item.(*networking.ServiceEntry), o, shallow)
	case *corev1.Service:
		copyInto(item.(*corev1.Service), o, shallow)
	case *corev1.Pod:
		copyInto(item.(*corev1.Pod), o, shallow)
	case *corev1.Node:
		copyInto(item.(*corev1.Node), o, shallow)
	default:
		return fmt.Errorf("bench store: Get of %T not supported", obj)
	}
	return nil
}

func copyInto[T any, P interface {
	*T
	DeepCopyInto(*T)
}](from P, to *T, shallow bool) {
	if shallow {
		*to = *from
		return
	}
	from.DeepCopyInto(to)
}

// List serves namespace and exact field-index selections without copying objects, as the cache reader
// does with UnsafeDisableDeepCopy (value lists still copy each struct, as meta.SetList does).
func (s *store) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	ix := s.kinds[kindOf(list)]
	var items []any
	var err error
	switch {
	case lo.FieldSelector != nil && !lo.FieldSelector.Empty():
		reqs := lo.FieldSelector.Requirements()
		if len(reqs) != 1 {
			return fmt.Errorf("bench store: one field requirement supported, got %v", lo.FieldSelector)
		}
		ns := lo.Namespace
		if ns == "" {
			ns = allNamespaces
		}
		items, err = ix.ByIndex("field:"+reqs[0].Field, ns+"/"+reqs[0].Value)
	case lo.Namespace != "":
		items, err = ix.ByIndex(toolscache.NamespaceIndex, lo.Namespace)
	default:
		items = ix.List()
	}
	if err != nil {
		return err
	}
	switch l := list.(type) {
	case *corev1.ServiceList:
		l.Items = valueList[corev1.Service](items)
	case *corev1.PodList:
		l.Items = valueList[corev1.Pod](items)
	case *corev1.NodeList:
		l.Items = valueList[corev1.Node](items)
	case *networking.ServiceEntryList:
		l.Items = ptrList[networking.ServiceEntry](items)
	case *networking.GatewayList:
		l.Items = ptrList[networking.Gateway](items)
	case *networking.VirtualServiceList:
		l.Items = ptrList[networking.VirtualService](items)
	case *networking.DestinationRuleList:
		l.Items = ptrList[networking.DestinationRule](items)
	}
	return nil
}

func valueList[T any](items []any) []T {
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = *it.(*T)
	}
	return out
}

func ptrList[T any](items []any) []*T {
	out := make([]*T, len(items))
	for i, it := range items {
		out[i] = it.(*T)
	}
	return out
}
