package reconciler

import (
	"context"
	"fmt"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/load"
)

// maxPending bounds the changes remembered between two checks; past it (the initial sync, a mass
// apply) one rebuild from the cache is cheaper than applying them one by one.
const maxPending = 2000

// pendingKey names an object whose change the snapshot has not taken yet.
type pendingKey struct{ kind, namespace, name string }

// Invalidate tells the reconciler that obj changed (was created, updated or deleted) in the cache;
// every watch event calls it with its object. The next check re-reads just the changed objects from
// the cache into the snapshot. With a nil obj (something unknown changed), or before the first
// snapshot, the next check rebuilds the snapshot from the whole cache.
func (r *Reconciler) Invalidate(obj client.Object) {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	if r.dirty {
		return
	}
	kind := ""
	if obj != nil {
		kind = kindOf(obj)
	}
	if !r.built || kind == "" || len(r.pending) >= maxPending {
		r.dirty, r.pending = true, nil
		return
	}
	if r.pending == nil {
		r.pending = map[pendingKey]struct{}{}
	}
	r.pending[pendingKey{kind, obj.GetNamespace(), obj.GetName()}] = struct{}{}
}

// kindOf is the kind of an object the snapshot holds, or "" for any other.
func kindOf(o client.Object) string {
	switch o.(type) {
	case *corev1.Service:
		return guard.KindService
	case *corev1.Pod:
		return "Pod"
	case *corev1.Node:
		return guard.KindNode
	case *networking.ServiceEntry:
		return guard.KindServiceEntry
	case *networking.Gateway:
		return guard.KindGateway
	case *networking.VirtualService:
		return guard.KindVirtualService
	case *networking.DestinationRule:
		return guard.KindDestinationRule
	}
	return ""
}

// snapshot brings the shared snapshot up to date and returns it; the caller holds snapMu until it is
// done reading it. Changes named by Invalidate are applied one by one; otherwise the snapshot is rebuilt
// from the whole cache.
func (r *Reconciler) snapshot(ctx context.Context) (*guard.Snapshot, error) {
	r.pendMu.Lock()
	full := r.dirty || !r.built
	pending := r.pending
	r.dirty, r.pending = false, nil
	r.pendMu.Unlock()
	if !full {
		for k := range pending {
			if err := r.refresh(ctx, k); err != nil {
				r.Invalidate(nil) // the snapshot may now miss a change: rebuild at the next check
				return nil, err
			}
		}
		return r.live.Snapshot(), nil
	}
	// Changes arriving from here on are already in what is listed, or are applied after it: re-reading
	// an object twice is harmless.
	l := load.New("")
	if err := l.AddCluster(ctx, r.Client, client.UnsafeDisableDeepCopy); err != nil {
		r.pendMu.Lock()
		r.dirty, r.pending = true, nil
		r.pendMu.Unlock()
		return nil, err
	}
	r.live = guard.NewLive(l.Snapshot(), r.Options)
	r.pendMu.Lock()
	r.built = true
	r.pendMu.Unlock()
	return r.live.Snapshot(), nil
}

// refresh re-reads one object from the cache into the snapshot, or takes it out when it is gone.
func (r *Reconciler) refresh(ctx context.Context, k pendingKey) error {
	var obj client.Object
	switch k.kind {
	case guard.KindService:
		obj = &corev1.Service{}
	case "Pod":
		obj = &corev1.Pod{}
	case guard.KindNode:
		obj = &corev1.Node{}
	case guard.KindServiceEntry:
		obj = &networking.ServiceEntry{}
	case guard.KindGateway:
		obj = &networking.Gateway{}
	case guard.KindVirtualService:
		obj = &networking.VirtualService{}
	case guard.KindDestinationRule:
		obj = &networking.DestinationRule{}
	default:
		return fmt.Errorf("unknown kind %q", k.kind)
	}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: k.name}, obj, client.UnsafeDisableDeepCopy)
	switch {
	case apierrors.IsNotFound(err):
		r.live.Delete(k.kind, k.namespace, k.name)
		return nil
	case err != nil:
		return fmt.Errorf("reading %s %s/%s: %w", k.kind, k.namespace, k.name, err)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		r.live.Set(guard.Workload{Kind: "Pod", Namespace: o.Namespace, Name: o.Name, Labels: o.Labels, NodeName: o.Spec.NodeName})
	case *corev1.Node:
		r.live.SetNode(o.Name, o.Labels)
	default:
		r.live.Set(obj)
	}
	return nil
}
