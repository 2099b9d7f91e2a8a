package bench

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	v1alpha3 "istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// clusterSize is the synthetic cluster of the guard benchmark.
type clusterSize struct {
	namespaces, services, virtualServices, destinationRules, gateways, pods, nodes, gatewayPods int
}

// The scale; small is what `make test` runs.
var (
	fullCluster  = clusterSize{namespaces: 100, services: 10000, virtualServices: 5000, destinationRules: 5000, gateways: 500, pods: 20000, nodes: 50, gatewayPods: 20}
	smallCluster = clusterSize{namespaces: 4, services: 40, virtualServices: 20, destinationRules: 20, gateways: 4, pods: 80, nodes: 2, gatewayPods: 2}
)

// brokenEvery makes one VirtualService in that many route to a missing host, and one DestinationRule
// in that many carry a subset selecting no pod, so the checks also build findings.
const brokenEvery = 100

func ns(i, n int) string { return fmt.Sprintf("ns-%03d", i%n) }

// svcName places Service i in namespace i%namespaces.
func svcName(i int) string { return "svc-" + strconv.Itoa(i) }

// typicalPod is the pod of the typical review, with the fields the API server fills in at creation,
// standing in for what a list or watch of pods returns before the cache's transforms.
func typicalPod(tb testing.TB) *corev1.Pod {
	tb.Helper()
	var r struct {
		Request struct {
			Object corev1.Pod `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(review(tb, "typical-review.json"), &r); err != nil {
		tb.Fatal(err)
	}
	p := r.Request.Object
	p.ResourceVersion = "123456"
	p.CreationTimestamp = metav1.Now()
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: "10.244.1.17", HostIP: "10.0.0.5", QOSClass: corev1.PodQOSBurstable,
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "reviews", Ready: true, Image: p.Spec.Containers[0].Image, ImageID: "sha256:0123456789abcdef", ContainerID: "containerd://0123456789abcdef"}},
	}
	return &p
}

// pod returns pod i: behind Service i%services with version v1 or v2, or, for the first gatewayPods,
// an ingress gateway pod in istio-system. Every pod carries the typical pod's full spec.
func (c clusterSize) pod(base *corev1.Pod, i int) *corev1.Pod {
	p := base.DeepCopy()
	p.UID = types.UID(fmt.Sprintf("pod-uid-%d", i))
	p.Spec.NodeName = "node-" + strconv.Itoa(i%c.nodes)
	if i < c.gatewayPods {
		p.Namespace, p.Name = "istio-system", "istio-ingressgateway-"+strconv.Itoa(i)
		p.Labels = map[string]string{"app": "istio-ingressgateway", "istio": "ingressgateway"}
		return p
	}
	s := i % c.services
	p.Namespace = ns(s, c.namespaces)
	p.Name = fmt.Sprintf("%s-%d-7d9f8c6b5d-x%d", svcName(s), i/c.services, i)
	p.Labels = map[string]string{"app": svcName(s), "version": "v" + strconv.Itoa(1+(i/c.services)%2), "pod-template-hash": "7d9f8c6b5d"}
	return p
}

func meta(namespace, name string, i int) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: namespace, Name: name, UID: types.UID(fmt.Sprintf("uid-%s-%d", name, i)), ResourceVersion: strconv.Itoa(1000 + i),
		Generation: 1, CreationTimestamp: metav1.Now(),
		Labels:      map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop"},
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","kind":"Service","metadata":{"name":"` + name + `"}}`},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{}}},"f:spec":{}}`)}}},
	}
}

// service i selects the pods of app svc-i and has an HTTP and a gRPC port.
func (c clusterSize) service(i int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: meta(ns(i, c.namespaces), svcName(i), i),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": svcName(i)}, Type: corev1.ServiceTypeClusterIP,
			ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250), ClusterIPs: []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250)},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
				{Name: "grpc", Port: 9090, TargetPort: intstr.FromInt32(9090), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// gatewayName places Gateway g in namespace g%namespaces.
func gatewayName(g int) string { return "gw-" + strconv.Itoa(g) }

func (c clusterSize) gateway(g int) *networking.Gateway {
	gw := &networking.Gateway{ObjectMeta: meta(ns(g, c.namespaces), gatewayName(g), g)}
	gw.Spec.Selector = map[string]string{"istio": "ingressgateway"}
	gw.Spec.Servers = []*v1alpha3.Server{
		{Port: &v1alpha3.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*.gw" + strconv.Itoa(g) + ".example.com"}},
		{Port: &v1alpha3.Port{Number: 443, Name: "https", Protocol: "HTTPS"}, Hosts: []string{"*.gw" + strconv.Itoa(g) + ".example.com"},
			Tls: &v1alpha3.ServerTLSSettings{Mode: v1alpha3.ServerTLSSettings_SIMPLE, CredentialName: "gw-" + strconv.Itoa(g) + "-cert"}},
	}
	return gw
}

// virtualService v routes to Service v (short name, same namespace) with a 90/10 split over subsets
// v1 and v2; every tenth is also bound to a Gateway of its namespace.
func (c clusterSize) virtualService(v int) *networking.VirtualService {
	host := svcName(v)
	if v%brokenEvery == brokenEvery-1 {
		host = "missing-" + strconv.Itoa(v)
	}
	vs := &networking.VirtualService{ObjectMeta: meta(ns(v, c.namespaces), "vs-"+strconv.Itoa(v), v)}
	vs.Spec.Hosts = []string{svcName(v)}
	if v%10 == 0 && c.gateways > 0 {
		g := v % c.gateways
		for g%c.namespaces != v%c.namespaces && g+c.namespaces < c.gateways {
			g += c.namespaces
		}
		vs.Spec.Hosts = append(vs.Spec.Hosts, svcName(v)+".gw"+strconv.Itoa(g)+".example.com")
		vs.Spec.Gateways = []string{"mesh", gatewayName(g)}
	}
	dest := func(subset string, w int32) *v1alpha3.HTTPRouteDestination {
		return &v1alpha3.HTTPRouteDestination{Destination: &v1alpha3.Destination{Host: host, Subset: subset, Port: &v1alpha3.PortSelector{Number: 80}}, Weight: w}
	}
	vs.Spec.Http = []*v1alpha3.HTTPRoute{
		{Name: "canary", Match: []*v1alpha3.HTTPMatchRequest{{Headers: map[string]*v1alpha3.StringMatch{"x-canary": {MatchType: &v1alpha3.StringMatch_Exact{Exact: "1"}}}}},
			Route: []*v1alpha3.HTTPRouteDestination{dest("v2", 100)}},
		{Name: "default", Route: []*v1alpha3.HTTPRouteDestination{dest("v1", 90), dest("v2", 10)}, Retries: &v1alpha3.HTTPRetry{Attempts: 3, RetryOn: "5xx"}},
	}
	return vs
}

// destinationRule d is for Service d with subsets v1 and v2 (and, now and then, v3 selecting nothing).
func (c clusterSize) destinationRule(d int) *networking.DestinationRule {
	dr := &networking.DestinationRule{ObjectMeta: meta(ns(d, c.namespaces), "dr-"+strconv.Itoa(d), d)}
	dr.Spec.Host = svcName(d)
	dr.Spec.TrafficPolicy = &v1alpha3.TrafficPolicy{Tls: &v1alpha3.ClientTLSSettings{Mode: v1alpha3.ClientTLSSettings_ISTIO_MUTUAL}}
	dr.Spec.Subsets = []*v1alpha3.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}
	if d%brokenEvery == brokenEvery-1 {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &v1alpha3.Subset{Name: "v3", Labels: map[string]string{"version": "v3"}})
	}
	return dr
}

func (c clusterSize) node(i int) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + strconv.Itoa(i), Labels: map[string]string{
		"kubernetes.io/hostname": "node-" + strconv.Itoa(i), "topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": "eu-west-1" + string(rune('a'+i%3)),
	}}}
}
