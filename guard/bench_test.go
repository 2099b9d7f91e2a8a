package guard_test

import (
	"fmt"
	"testing"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/guard"
)

// bigSnapshot is the scale the reconciler must hold: 10k Services, 20k pods, 2k VirtualServices and
// DestinationRules, spread over 100 namespaces.
func bigSnapshot() *guard.Snapshot {
	s := &guard.Snapshot{}
	for i := range 10000 {
		ns, app := fmt.Sprintf("ns-%d", i%100), fmt.Sprintf("app-%d", i)
		s.Services = append(s.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Port: 8080}}}})
		for v := range 2 {
			s.Workloads = append(s.Workloads, guard.Workload{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("%s-%d", app, v),
				Labels: map[string]string{"app": app, "version": fmt.Sprintf("v%d", v)}})
		}
		if i%5 == 0 {
			vs := &networking.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app}}
			vs.Spec.Hosts = []string{app}
			vs.Spec.Http = []*v1alpha3.HTTPRoute{{Route: []*v1alpha3.HTTPRouteDestination{{Destination: &v1alpha3.Destination{Host: app, Subset: "v1"}}}}}
			s.VirtualServices = append(s.VirtualServices, vs)
			dr := &networking.DestinationRule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app}}
			dr.Spec.Host = app
			dr.Spec.Subsets = []*v1alpha3.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}}
			s.DestinationRules = append(s.DestinationRules, dr)
		}
	}
	return s
}

func BenchmarkCheckAll(b *testing.B) {
	s := bigSnapshot()
	for b.Loop() {
		if fs := guard.Check(s, guard.DefaultOptions()); len(fs) != 0 {
			b.Fatalf("unexpected findings: %v", fs[0])
		}
	}
}

func BenchmarkCheckOneDestinationRule(b *testing.B) {
	s := bigSnapshot()
	o := guard.DefaultOptions()
	dr := s.DestinationRules[len(s.DestinationRules)/2]
	guard.CheckObject(s, o, dr) // builds the index once, as the shared snapshot does
	for b.Loop() {
		guard.CheckObject(s, o, dr)
	}
}
