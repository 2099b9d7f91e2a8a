package guard_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/load"
)

func TestHosts(t *testing.T) {
	ext := se("default", "ext", `{hosts: ["*.eu.example.com", api.example.com], ports: [{number: 443, name: https, protocol: TLS}]}`)
	tests := map[string]struct {
		opts func(*guard.Options)
		docs []string
		want []string
	}{
		"short DestinationRule host expands to its namespace": {
			docs: []string{reviews, dr("default", "r", `{host: reviews}`)},
		},
		"short DestinationRule host in another namespace misses": {
			docs: []string{reviews, dr("web", "r", `{host: reviews}`)},
			want: []string{"MW0201 warning DestinationRule web/r spec.host"},
		},
		"FQDN with the cluster domain": {
			docs: []string{reviews, dr("web", "r", `{host: reviews.default.svc.cluster.local}`)},
		},
		"dotted names are literal (reviews.default is not expanded)": {
			docs: []string{reviews, dr("web", "r", `{host: reviews.default}`)},
			want: []string{"MW0201 warning DestinationRule web/r spec.host"},
		},
		"custom cluster domain": {
			opts: func(o *guard.Options) { o.ClusterDomain = "corp.internal" },
			docs: []string{reviews, dr("web", "a", `{host: reviews.default.svc.corp.internal}`), dr("web", "b", `{host: reviews.default.svc.cluster.local}`)},
			want: []string{"MW0201 warning DestinationRule web/b spec.host"},
		},
		"missing DestinationRule host as error by config": {
			opts: func(o *guard.Options) { o.MissingDestinationRuleHost = config.SeverityError },
			docs: []string{dr("default", "r", `{host: nothing}`)},
			want: []string{"MW0201 error DestinationRule default/r spec.host"},
		},
		"ServiceEntry exact and wildcard suffix": {
			docs: []string{ext, dr("default", "a", `{host: api.example.com}`), dr("default", "b", `{host: x.eu.example.com}`), dr("default", "c", `{host: x.us.example.com}`)},
			want: []string{"MW0201 warning DestinationRule default/c spec.host"},
		},
		"ServiceEntry exportTo . hides it from other namespaces": {
			docs: []string{se("other", "o", `{hosts: [o.example.com], exportTo: ["."]}`), vs("default", "v", route("o.example.com")), vs("other", "v", route("o.example.com"))},
			want: []string{"MW0301 error VirtualService default/v spec.http[0].route[0].destination.host"},
		},
		"Service exportTo annotation": {
			docs: []string{`{apiVersion: v1, kind: Service, metadata: {name: d, namespace: default, annotations: {networking.istio.io/exportTo: "banana,."}}, spec: {ports: [{port: 80}]}}`,
				vs("banana", "ok", route("d.default.svc.cluster.local")), vs("default", "ok", route("d")), vs("apple", "nope", route("d.default.svc.cluster.local"))},
			want: []string{"MW0301 error VirtualService apple/nope spec.http[0].route[0].destination.host"},
		},
		"VirtualService exportTo: destination must be visible where it applies": {
			docs: []string{`{apiVersion: v1, kind: Service, metadata: {name: h, namespace: h, annotations: {networking.istio.io/exportTo: "."}}, spec: {ports: [{port: 80}]}}`,
				vs("h", "v", `{exportTo: [bogus], http: [{route: [{destination: {host: h}}]}]}`)},
			want: []string{"MW0301 error VirtualService h/v spec.http[0].route[0].destination.host"},
		},
		"allow-any outbound makes unknown hosts warnings": {
			opts: func(o *guard.Options) { o.AllowAnyOutbound = true },
			docs: []string{vs("default", "v", route("unknown.example.com"))},
			want: []string{"MW0301 warning VirtualService default/v spec.http[0].route[0].destination.host"},
		},
		"tcp, tls and mirror destinations": {
			docs: []string{reviews, vs("default", "v", `{http: [{route: [{destination: {host: reviews}}], mirror: {host: m1}, mirrors: [{destination: {host: m2}}]}], tcp: [{route: [{destination: {host: t}}]}], tls: [{match: [{sniHosts: [a]}], route: [{destination: {host: s}}]}]}`)},
			want: []string{
				"MW0301 error VirtualService default/v spec.http[0].mirror.host",
				"MW0301 error VirtualService default/v spec.http[0].mirrors[0].destination.host",
				"MW0301 error VirtualService default/v spec.tcp[0].route[0].destination.host",
				"MW0301 error VirtualService default/v spec.tls[0].route[0].destination.host",
			},
		},
		"empty destination": {
			docs: []string{vs("default", "v", `{http: [{route: [{}]}]}`)},
			want: []string{"MW0301 error VirtualService default/v spec.http[0].route[0].destination.host"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := guard.DefaultOptions()
			if tc.opts != nil {
				tc.opts(&o)
			}
			if diff := cmp.Diff(tc.want, run(t, o, tc.docs...)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPortsAndSubsets(t *testing.T) {
	two := svc("default", "two", "two", "{port: 80, name: http}", "{port: 443, name: https}")
	rdr := dr("default", "reviews", `{host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v9, labels: {version: v9}}]}`)
	r1 := pod("default", "reviews-1", "app: reviews, version: v1")
	tests := map[string]struct {
		docs []string
		want []string
	}{
		"port exists": {docs: []string{reviews, vs("default", "v", `{http: [{route: [{destination: {host: reviews, port: {number: 9080}}}]}]}`)}},
		"port missing": {
			docs: []string{reviews, vs("default", "v", `{http: [{route: [{destination: {host: reviews, port: {number: 999}}}]}]}`)},
			want: []string{"MW0302 error VirtualService default/v spec.http[0].route[0].destination.port.number"},
		},
		"several ports, none given, mesh only: warning": {
			docs: []string{two, vs("default", "v", route("two"))},
			want: []string{"MW0303 warning VirtualService default/v spec.http[0].route[0].destination.port"},
		},
		"several ports, none given, behind a Gateway: error": {
			docs: []string{two, storeGw, ingressPod, vs("store", "v", `{hosts: ["*"], gateways: [store-gateway], http: [{route: [{destination: {host: two.default.svc.cluster.local}}]}]}`)},
			want: []string{"MW0303 error VirtualService store/v spec.http[0].route[0].destination.port"},
		},
		"subset defined": {docs: []string{reviews, rdr, r1, vs("default", "v", `{http: [{route: [{destination: {host: reviews, subset: v1}}]}]}`)},
			want: []string{"MW0501 warning DestinationRule default/reviews spec.subsets[1].labels"}},
		"subset defined by a DestinationRule in the Service's namespace, VirtualService elsewhere": {
			docs: []string{reviews, rdr, r1, vs("web", "v", `{http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]}]}`)},
			want: []string{"MW0501 warning DestinationRule default/reviews spec.subsets[1].labels"}},
		"subset of a DestinationRule not exported to the VirtualService": {
			docs: []string{reviews, r1, dr("default", "reviews", `{host: reviews, exportTo: ["."], subsets: [{name: v1, labels: {version: v1}}]}`),
				vs("web", "v", `{http: [{route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]}]}`)},
			want: []string{"MW0401 error VirtualService web/v spec.http[0].route[0].destination.subset"}},
		"subset missing": {
			docs: []string{reviews, r1, vs("default", "v", `{http: [{route: [{destination: {host: reviews, subset: v1}}]}]}`)},
			want: []string{"MW0401 error VirtualService default/v spec.http[0].route[0].destination.subset"},
		},
		"subset selected only through node topology labels": {
			docs: []string{reviews, `{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: default, labels: {app: reviews}}, spec: {nodeName: n1}}`,
				`{apiVersion: v1, kind: Node, metadata: {name: n1, labels: {topology.kubernetes.io/zone: z1, topology.kubernetes.io/region: ""}}}`,
				dr("default", "reviews", `{host: reviews, subsets: [{name: z, labels: {topology.kubernetes.io/zone: z1}}, {name: empty, labels: {topology.kubernetes.io/region: ""}}]}`)},
			want: []string{"MW0501 warning DestinationRule default/reviews spec.subsets[1].labels"},
		},
		"workload pod templates stand in for pods": {
			docs: []string{reviews, rdr, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: r9, namespace: default}, spec: {template: {metadata: {labels: {app: reviews, version: v9}}}}}`, r1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, run(t, guard.DefaultOptions(), tc.docs...)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGatewaysAndHosts(t *testing.T) {
	tests := map[string]struct {
		docs []string
		want []string
	}{
		"selector matches no pod": {
			docs: []string{gw("store", "g", "istio: ingresstypo", `{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}`)},
			want: []string{"MW0601 warning Gateway store/g spec.selector"},
		},
		// istio/istio#22698 (and #38148, #44430): a Gateway in an application namespace is served by
		// ingress pods in istio-system; istiod matches its selector in every namespace.
		"selector matches pods in another namespace (istio#22698)": {
			docs: []string{ingressPod, ingressSvc, gw("app", "g", "istio: ingressgateway", `{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}`)},
		},
		"port is the Service port": {
			docs: []string{ingressPod, ingressSvc, gw("app", "g", "istio: ingressgateway", `{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"]}`)},
		},
		"port exposed by no Service of the pods": {
			docs: []string{ingressPod, ingressSvc, gw("app", "g", "istio: ingressgateway", `{port: {number: 9999, name: http, protocol: HTTP}, hosts: ["*"]}`)},
			want: []string{"MW0602 warning Gateway app/g spec.servers[0].port.number"},
		},
		"hosts split over two Gateways, or also bound to the mesh": {
			docs: []string{ingressPod, gw("app", "a", "istio: ingressgateway", `{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com]}`),
				gw("app", "b", "istio: ingressgateway", `{port: {number: 80, name: http, protocol: HTTP}, hosts: [b.example.com]}`),
				vs("app", "v", `{hosts: [a.example.com, b.example.com], gateways: [a, b]}`),
				vs("app", "m", `{hosts: [a.example.com, reviews], gateways: [a, mesh]}`)},
		},
		"VirtualService host matches a wildcard server host": {
			docs: []string{ingressPod, gw("app", "g", "istio: ingressgateway", `{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*.example.com"]}`),
				vs("app", "v", `{hosts: [a.example.com], gateways: [g]}`)},
		},
		"VirtualService host not served": {
			docs: []string{ingressPod, gw("app", "g", "istio: ingressgateway", `{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com]}`),
				vs("app", "v", `{hosts: [a.example.com, b.example.com, c.example.com], gateways: [g]}`),
				vs("app", "w", `{hosts: [b.example.com], gateways: [g]}`)},
			want: []string{
				"MW0701 warning VirtualService app/v spec.hosts[1]",
				"MW0701 warning VirtualService app/v spec.hosts[2]",
				"MW0701 warning VirtualService app/w spec.gateways[0]",
			},
		},
		// istio/istio#34653: "./host" on a Gateway is visible to VirtualServices in the Gateway's namespace.
		"./host visible to the Gateway's own namespace (istio#34653)": {
			docs: []string{ingressPod, gw("my-ns", "g", "istio: ingressgateway", `{port: {number: 80, name: http, protocol: HTTP}, hosts: [./my-service.example.com]}`),
				vs("my-ns", "v", `{hosts: [my-service.example.com], exportTo: ["."], gateways: [g]}`),
				vs("other", "v", `{hosts: [my-service.example.com], gateways: [my-ns/g]}`)},
			want: []string{"MW0701 warning VirtualService other/v spec.gateways[0]"},
		},
		"ns/host on a Gateway": {
			docs: []string{ingressPod, gw("gw", "g", "istio: ingressgateway", `{port: {number: 80, name: http, protocol: HTTP}, hosts: [team/a.example.com, "*/b.example.com"]}`),
				vs("team", "v", `{hosts: [a.example.com, b.example.com], gateways: [gw/g]}`),
				vs("else", "v", `{hosts: [a.example.com], gateways: [gw/g]}`),
				vs("else", "w", `{hosts: [a.example.com, b.example.com], gateways: [gw/g]}`)},
			want: []string{"MW0701 warning VirtualService else/v spec.gateways[0]", "MW0701 warning VirtualService else/w spec.hosts[0]"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, run(t, guard.DefaultOptions(), tc.docs...)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDependents(t *testing.T) {
	l := load.New("default")
	docs := []string{storeGw, reviews,
		vs("store", "a", `{hosts: ["*"], gateways: [store-gateway], http: [{route: [{destination: {host: reviews.default.svc.cluster.local}}]}]}`),
		vs("web", "b", `{hosts: ["*"], gateways: [store-gateway.store.svc.cluster.local]}`),
		vs("default", "c", route("reviews")),
		vs("default", "d", route("other")),
		dr("default", "reviews", `{host: reviews}`), dr("web", "x", `{host: reviews}`),
	}
	if err := l.AddReader("t", strings.NewReader(strings.Join(docs, "\n---\n"))); err != nil {
		t.Fatal(err)
	}
	s := l.Snapshot()
	var gateway, service any
	for _, g := range s.Gateways {
		gateway = g
	}
	for _, sv := range s.Services {
		service = sv
	}
	o := guard.DefaultOptions()
	want := []guard.Resource{{Kind: "VirtualService", Namespace: "store", Name: "a"}, {Kind: "VirtualService", Namespace: "web", Name: "b"}}
	if diff := cmp.Diff(want, guard.Dependents(s, o, gateway)); diff != "" {
		t.Errorf("Gateway dependents (-want +got):\n%s", diff)
	}
	want = []guard.Resource{{Kind: "VirtualService", Namespace: "default", Name: "c"}, {Kind: "VirtualService", Namespace: "store", Name: "a"}, {Kind: "DestinationRule", Namespace: "default", Name: "reviews"}}
	if diff := cmp.Diff(want, guard.Dependents(s, o, service)); diff != "" {
		t.Errorf("Service dependents (-want +got):\n%s", diff)
	}
}
