package reconciler

import (
	"context"
	"maps"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/meshwarden/meshwarden/guard"
)

// Field indexes on the cache: what each object refers to, so that a change to a target finds its
// dependents without a scan.
const (
	IndexGateway = "meshwarden.guard/gateway" // VirtualService → "ns/name" of each Gateway it names
	IndexHost    = "meshwarden.guard/host"    // VirtualService → destination hosts; DestinationRule → its host
)

// SetupWithManager adds the field indexes and the controller. The controller runs on the leader only.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &networking.VirtualService{}, IndexGateway, func(o client.Object) []string {
		return guard.GatewayRefs(o.(*networking.VirtualService))
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &networking.VirtualService{}, IndexHost, func(o client.Object) []string {
		return guard.DestinationHosts(o.(*networking.VirtualService), r.Options)
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &networking.DestinationRule{}, IndexHost, func(o client.Object) []string {
		return []string{guard.DestinationRuleHost(o.(*networking.DestinationRule), r.Options)}
	}); err != nil {
		return err
	}
	c := mgr.GetCache()
	return builder.TypedControllerManagedBy[Key](mgr).
		Named("meshwarden-guard").
		WatchesRawSource(source.TypedKind(c, &networking.VirtualService{}, enqueue(r, r.virtualService, nil))).
		WatchesRawSource(source.TypedKind(c, &networking.DestinationRule{}, enqueue(r, r.destinationRule, nil))).
		WatchesRawSource(source.TypedKind(c, &networking.Gateway{}, enqueue(r, r.gateway, nil))).
		WatchesRawSource(source.TypedKind(c, &networking.ServiceEntry{}, enqueue(r, r.serviceEntry, nil))).
		WatchesRawSource(source.TypedKind(c, &corev1.Service{}, enqueue(r, r.service, nil))).
		WatchesRawSource(source.TypedKind(c, &corev1.Pod{}, enqueue(r, r.pod, podChanged))).
		// Node labels only reach the snapshot (topology of pods); nothing is re-checked for them.
		WatchesRawSource(source.TypedKind(c, &corev1.Node{}, enqueue(r, noDependents[*corev1.Node], nodeChanged))).
		// One worker: checks share one snapshot and are cheap; ordering keeps Events in sequence.
		WithOptions(controller.TypedOptions[Key]{MaxConcurrentReconciles: 1}).
		Complete(r)
}

// enqueue tells the snapshot which objects changed and queues the dependents of the old and new object after the
// debounce delay. The delaying queue keeps one entry per Key, so a burst collapses. changed, when set,
// filters updates that cannot affect any check (a pod's status, say).
func enqueue[T client.Object](r *Reconciler, deps func(context.Context, T) []Key, changed func(old, new T) bool) handler.TypedEventHandler[T, Key] {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[Key], objs ...T) {
		for _, o := range objs {
			r.Invalidate(o)
			for _, k := range deps(ctx, o) {
				q.AddAfter(k, r.Debounce)
			}
		}
	}
	return handler.TypedFuncs[T, Key]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[T], q workqueue.TypedRateLimitingInterface[Key]) {
			add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[T], q workqueue.TypedRateLimitingInterface[Key]) {
			if changed == nil || changed(e.ObjectOld, e.ObjectNew) {
				add(ctx, q, e.ObjectOld, e.ObjectNew)
			}
		},
		DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[T], q workqueue.TypedRateLimitingInterface[Key]) {
			add(ctx, q, e.Object)
		},
	}
}

func podChanged(old, new *corev1.Pod) bool {
	return !maps.Equal(old.Labels, new.Labels) || old.Spec.NodeName != new.Spec.NodeName
}

func nodeChanged(old, new *corev1.Node) bool { return !maps.Equal(old.Labels, new.Labels) }

func noDependents[T client.Object](context.Context, T) []Key { return nil }

func (r *Reconciler) virtualService(_ context.Context, vs *networking.VirtualService) []Key {
	return []Key{{guard.KindVirtualService, vs.Namespace, vs.Name}}
}

func (r *Reconciler) destinationRule(ctx context.Context, dr *networking.DestinationRule) []Key {
	keys := []Key{{guard.KindDestinationRule, dr.Namespace, dr.Name}}
	return append(keys, r.byIndex(ctx, &networking.VirtualServiceList{}, IndexHost, guard.DestinationRuleHost(dr, r.Options))...)
}

func (r *Reconciler) gateway(ctx context.Context, gw *networking.Gateway) []Key {
	keys := []Key{{guard.KindGateway, gw.Namespace, gw.Name}}
	return append(keys, r.byIndex(ctx, &networking.VirtualServiceList{}, IndexGateway, gw.Namespace+"/"+gw.Name)...)
}

func (r *Reconciler) serviceEntry(ctx context.Context, se *networking.ServiceEntry) []Key {
	var keys []Key
	for _, h := range se.Spec.Hosts {
		// Wildcard entries are matched by suffix; their dependents are re-checked on their own changes.
		keys = append(keys, r.hostDependents(ctx, guard.ResolveHost(h, se.Namespace, r.Options))...)
	}
	return keys
}

// service re-checks what routes to the Service and the Gateways whose pods it selects: their port check
// reads the Services of their pods, and no other Gateway can see this one.
func (r *Reconciler) service(ctx context.Context, svc *corev1.Service) []Key {
	keys := r.hostDependents(ctx, guard.ServiceHost(svc, r.Options))
	return append(keys, r.gatewaysOfService(ctx, svc)...)
}

// gatewaysOfService lists the Gateways whose selector matches a pod that svc selects.
func (r *Reconciler) gatewaysOfService(ctx context.Context, svc *corev1.Service) []Key {
	if len(svc.Spec.Selector) == 0 {
		return nil // selects no pod, so no Gateway's port check can read it
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(svc.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		r.Log.Error(err, "listing the pods of a Service")
		return r.allGateways(ctx)
	}
	var selected []map[string]string
	for i := range pods.Items {
		if l := pods.Items[i].Labels; subsetOf(svc.Spec.Selector, l) {
			selected = append(selected, l)
		}
	}
	if len(selected) == 0 {
		return nil
	}
	var gws networking.GatewayList
	if err := r.Client.List(ctx, &gws, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var keys []Key
	for _, g := range gws.Items {
		if len(g.Spec.Selector) == 0 {
			continue
		}
		// A selector on node topology may match through the labels istiod copies from the node.
		for _, l := range selected {
			if guard.SelectsOnTopology(g.Spec.Selector) || subsetOf(g.Spec.Selector, l) {
				keys = append(keys, Key{guard.KindGateway, g.Namespace, g.Name})
				break
			}
		}
	}
	return keys
}

// pod re-checks the DestinationRules of the Services that select it and the Gateways that select it.
func (r *Reconciler) pod(ctx context.Context, p *corev1.Pod) []Key {
	var keys []Key
	var svcs corev1.ServiceList
	if err := r.Client.List(ctx, &svcs, client.InNamespace(p.Namespace), client.UnsafeDisableDeepCopy); err == nil {
		for i := range svcs.Items {
			s := &svcs.Items[i]
			if len(s.Spec.Selector) > 0 && subsetOf(s.Spec.Selector, p.Labels) {
				keys = append(keys, r.byIndex(ctx, &networking.DestinationRuleList{}, IndexHost, guard.ServiceHost(s, r.Options))...)
			}
		}
	}
	var gws networking.GatewayList
	if err := r.Client.List(ctx, &gws, client.UnsafeDisableDeepCopy); err == nil {
		for _, g := range gws.Items {
			if len(g.Spec.Selector) > 0 && subsetOf(g.Spec.Selector, p.Labels) {
				keys = append(keys, Key{guard.KindGateway, g.Namespace, g.Name})
			}
		}
	}
	return keys
}

func (r *Reconciler) hostDependents(ctx context.Context, host string) []Key {
	keys := r.byIndex(ctx, &networking.VirtualServiceList{}, IndexHost, host)
	return append(keys, r.byIndex(ctx, &networking.DestinationRuleList{}, IndexHost, host)...)
}

func (r *Reconciler) allGateways(ctx context.Context) []Key {
	var gws networking.GatewayList
	if err := r.Client.List(ctx, &gws, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	keys := make([]Key, 0, len(gws.Items))
	for _, g := range gws.Items {
		keys = append(keys, Key{guard.KindGateway, g.Namespace, g.Name})
	}
	return keys
}

// byIndex lists VirtualServices or DestinationRules whose index field has value.
func (r *Reconciler) byIndex(ctx context.Context, list client.ObjectList, field, value string) []Key {
	if err := r.Client.List(ctx, list, client.MatchingFields{field: value}, client.UnsafeDisableDeepCopy); err != nil {
		r.Log.Error(err, "listing dependents", "index", field)
		return nil
	}
	var keys []Key
	switch l := list.(type) {
	case *networking.VirtualServiceList:
		for _, o := range l.Items {
			keys = append(keys, Key{guard.KindVirtualService, o.Namespace, o.Name})
		}
	case *networking.DestinationRuleList:
		for _, o := range l.Items {
			keys = append(keys, Key{guard.KindDestinationRule, o.Namespace, o.Name})
		}
	}
	return keys
}

func subsetOf(sel, labels map[string]string) bool {
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}
