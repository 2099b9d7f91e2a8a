package load

import (
	"context"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshwarden/meshwarden/guard"
)

// AddCluster adds every object the checks read from a cluster, in all namespaces. Istio kinds whose
// CRDs are not installed are skipped: there is nothing of that kind to check. Files added afterwards
// replace cluster objects of the same kind, namespace and name, as if applied on top. With a cache
// reader, pass client.UnsafeDisableDeepCopy: the snapshot only reads.
func (l *Loader) AddCluster(ctx context.Context, c client.Reader, opts ...client.ListOption) error {
	steps := []func() error{
		func() error {
			return list(ctx, c, opts, &corev1.ServiceList{}, func(ls *corev1.ServiceList) {
				for i := range ls.Items {
					l.AddObject(&ls.Items[i])
				}
			})
		},
		func() error {
			if l.SkipWorkloads {
				return nil
			}
			return list(ctx, c, opts, &corev1.PodList{}, func(ls *corev1.PodList) {
				for _, p := range ls.Items {
					l.AddObject(guard.Workload{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, NodeName: p.Spec.NodeName})
				}
			})
		},
		func() error {
			if l.SkipWorkloads {
				return nil
			}
			return list(ctx, c, opts, &corev1.NodeList{}, func(ls *corev1.NodeList) {
				for _, n := range ls.Items {
					l.AddObject(node{name: n.Name, labels: n.Labels})
				}
			})
		},
		func() error {
			return list(ctx, c, opts, &networking.ServiceEntryList{}, func(ls *networking.ServiceEntryList) { addAll(l, ls.Items) })
		},
		func() error {
			return list(ctx, c, opts, &networking.GatewayList{}, func(ls *networking.GatewayList) { addAll(l, ls.Items) })
		},
		func() error {
			return list(ctx, c, opts, &networking.VirtualServiceList{}, func(ls *networking.VirtualServiceList) { addAll(l, ls.Items) })
		},
		func() error {
			return list(ctx, c, opts, &networking.DestinationRuleList{}, func(ls *networking.DestinationRuleList) { addAll(l, ls.Items) })
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func addAll[T any](l *Loader, items []*T) {
	for _, o := range items {
		l.AddObject(o)
	}
}

func list[L client.ObjectList](ctx context.Context, c client.Reader, opts []client.ListOption, ls L, each func(L)) error {
	if err := c.List(ctx, ls, opts...); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	each(ls)
	return nil
}
