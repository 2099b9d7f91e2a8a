package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"
)

func TestConfigPathFromArgs(t *testing.T) {
	tests := map[string]struct {
		args    []string
		want    string
		wantErr bool
	}{
		"short flag among Envoy's": {args: []string{"--drain-time-s", "45", "-c", "etc/istio/proxy/envoy-rev.json", "--local-address-ip-version", "v4"}, want: "etc/istio/proxy/envoy-rev.json"},
		"long flag":                {args: []string{"--config-path", "b.json", "--log-format", "%v"}, want: "b.json"},
		"long flag with =":         {args: []string{"--concurrency", "2", "--config-path=c.yaml"}, want: "c.yaml"},
		"no config flag":           {args: []string{"--drain-time-s", "45"}, wantErr: true},
		"-c without a value":       {args: []string{"--drain-time-s", "45", "-c"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := configPathFromArgs(tc.args)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("configPathFromArgs(%q) = %q, %v; want %q, error %t", tc.args, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// bootstrap returns a minimal bootstrap like pilot-agent's, changed by edits, as JSON.
func bootstrap(t *testing.T, xdsSocket, sdsSocket string, edits ...func(map[string]any)) []byte {
	t.Helper()
	pipeCluster := func(name, path string) map[string]any {
		return map[string]any{
			"name": name, "type": "STATIC", "connect_timeout": "1s",
			"typed_extension_protocol_options": map[string]any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
					"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
					"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
				},
			},
			"load_assignment": map[string]any{"cluster_name": name, "endpoints": []any{map[string]any{"lb_endpoints": []any{
				map[string]any{"endpoint": map[string]any{"address": map[string]any{"pipe": map[string]any{"path": path}}}},
			}}}},
		}
	}
	b := map[string]any{
		"node": map[string]any{
			"id":       "sidecar~10.1.2.3~x-7d4f.ns~ns.svc.cluster.local",
			"cluster":  "x.ns",
			"metadata": map[string]any{"ISTIO_VERSION": "1.32.0", "NAMESPACE": "ns"},
		},
		"static_resources": map[string]any{"clusters": []any{pipeCluster("xds-grpc", xdsSocket), pipeCluster("sds-grpc", sdsSocket)}},
		"dynamic_resources": map[string]any{
			"ads_config": map[string]any{"api_type": "DELTA_GRPC", "transport_api_version": "V3",
				"grpc_services": []any{map[string]any{"envoy_grpc": map[string]any{"cluster_name": "xds-grpc"}}}},
			"cds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
			"lds_config": map[string]any{"ads": map[string]any{}, "resource_api_version": "V3"},
		},
	}
	for _, edit := range edits {
		edit(b)
	}
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func withExtension(typeURL string) func(map[string]any) {
	return func(b map[string]any) {
		b["bootstrap_extensions"] = []any{map[string]any{"name": "ext", "typed_config": map[string]any{"@type": typeURL, "some_field": 1}}}
	}
}

// readReport reads the report, or returns the zero report if it is not there yet.
func readReport(t *testing.T, path string) report {
	t.Helper()
	var r report
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return r
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("report %s: %v", path, err)
	}
	return r
}

func testEnv(reportPath string) func(string) string {
	return func(key string) string {
		return map[string]string{
			"MESHWARDEN_STANDIN_REPORT":       reportPath,
			"MESHWARDEN_STANDIN_NO_LISTENERS": "1",
			"MESHWARDEN_STANDIN_TIMEOUT":      "20s",
		}[key]
	}
}

// TestBootstrapValidation runs the stand-in on each bootstrap with a context that has already
// ended, so it stops right after validation, and reads what it reported.
func TestBootstrapValidation(t *testing.T) {
	tests := map[string]struct {
		edits          []func(map[string]any)
		yaml           bool
		wantCode       int
		wantError      string // in the report's bootstrapError
		wantUnresolved []string
	}{
		"minimal":          {},
		"minimal, as YAML": {yaml: true},
		"extension this binary cannot decode": {
			edits:          []func(map[string]any){withExtension("type.googleapis.com/istio.workload.BootstrapExtension")},
			wantUnresolved: []string{"istio.workload.BootstrapExtension"},
		},
		"core type that does not exist": {
			edits:    []func(map[string]any){withExtension("type.googleapis.com/envoy.config.core.v3.NoSuchThing")},
			wantCode: 1, wantError: "core type",
		},
		"cluster with an empty name": {
			edits: []func(map[string]any){func(b map[string]any) {
				b["static_resources"].(map[string]any)["clusters"].([]any)[0].(map[string]any)["name"] = ""
			}},
			wantCode: 1, wantError: "invalid Cluster.Name",
		},
		"field Envoy does not know": {
			edits:    []func(map[string]any){func(b map[string]any) { b["node"].(map[string]any)["colour"] = "blue" }},
			wantCode: 1, wantError: "unknown field",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			data := bootstrap(t, "./etc/istio/proxy/XDS", "./var/run/secrets/workload-spiffe-uds/socket", tc.edits...)
			if tc.yaml {
				var err error
				if data, err = yaml.JSONToYAML(data); err != nil {
					t.Fatal(err)
				}
			}
			configPath := filepath.Join(dir, "envoy-rev.json")
			if err := os.WriteFile(configPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			reportPath := filepath.Join(dir, "report.json")

			code := run(ctx, []string{"--drain-time-s", "45", "-c", configPath}, testEnv(reportPath))

			r := readReport(t, reportPath)
			if code != tc.wantCode || r.BootstrapValid != (tc.wantCode == 0) {
				t.Errorf("exit code %d, bootstrapValid %t; want %d (error %q)", code, r.BootstrapValid, tc.wantCode, r.BootstrapError)
			}
			if !strings.Contains(r.BootstrapError, tc.wantError) || (tc.wantError == "") != (r.BootstrapError == "") {
				t.Errorf("bootstrapError = %q, want one containing %q", r.BootstrapError, tc.wantError)
			}
			if diff := cmp.Diff(tc.wantUnresolved, r.UnresolvedTypes, cmpEmpty); diff != "" {
				t.Errorf("unresolvedTypes (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmpty = cmp.Transformer("emptyIsNil", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

// fakeControlPlane serves ADS and SDS the way pilot-agent's proxy does, in the smallest form: it
// answers each new subscription once and records the requests that follow.
type fakeControlPlane struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	secretv3.UnimplementedSecretDiscoveryServiceServer
	resources map[string][]resource // by type URL

	mu      sync.Mutex
	nodeIDs []string
	acked   map[string]string // type URL → version ACKed
	nacked  map[string]string // type URL → error detail
}

type xdsStream interface {
	Send(*discoveryv3.DiscoveryResponse) error
	Recv() (*discoveryv3.DiscoveryRequest, error)
}

func (f *fakeControlPlane) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return f.serve(s)
}

func (f *fakeControlPlane) StreamSecrets(s secretv3.SecretDiscoveryService_StreamSecretsServer) error {
	return f.serve(s)
}

func (f *fakeControlPlane) serve(stream xdsStream) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		f.mu.Lock()
		f.nodeIDs = append(f.nodeIDs, req.GetNode().GetId())
		switch {
		case req.GetErrorDetail() != nil:
			f.nacked[req.GetTypeUrl()] = req.GetErrorDetail().GetMessage()
		case req.GetResponseNonce() != "":
			f.acked[req.GetTypeUrl()] = req.GetVersionInfo()
		}
		f.mu.Unlock()
		if req.GetResponseNonce() != "" {
			continue // an answer to a response, not a new subscription
		}
		resp := &discoveryv3.DiscoveryResponse{TypeUrl: req.GetTypeUrl(), VersionInfo: "v1", Nonce: "nonce-1"}
		for _, r := range f.resources[req.GetTypeUrl()] {
			if len(req.GetResourceNames()) > 0 && !slices.Contains(req.GetResourceNames(), r.GetName()) {
				continue
			}
			a, err := anypb.New(r)
			if err != nil {
				return err
			}
			resp.Resources = append(resp.Resources, a)
		}
		if err := stream.Send(resp); err != nil {
			return nil
		}
	}
}

func inline(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(s)}}
}

func TestFetchesConfigAsEnvoyWould(t *testing.T) {
	const (
		v1        = "outbound|3000|v1|x.ns.svc.cluster.local"
		v2        = "outbound|3000|v2|x.ns.svc.cluster.local"
		chainPEM  = "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n"
		rootPEM   = "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n"
		keyMarker = "PRIVATE KEY"
	)
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: "outbound_0.0.0.0_3000",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: "3000",
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cp := &fakeControlPlane{
		acked:  map[string]string{},
		nacked: map[string]string{},
		resources: map[string][]resource{
			typeCluster: {
				&clusterv3.Cluster{Name: v1},
				&clusterv3.Cluster{Name: "bad", ConnectTimeout: durationpb.New(-time.Second)}, // must be > 0
			},
			typeListener: {&listenerv3.Listener{
				Name: "0.0.0.0_3000",
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 3000}}}},
				FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
					Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}},
			}},
			typeRoute: {&routev3.RouteConfiguration{Name: "3000", VirtualHosts: []*routev3.VirtualHost{{
				Name:    "x.ns.svc.cluster.local:3000",
				Domains: []string{"x.ns.svc.cluster.local", "x"},
				Routes: []*routev3.Route{
					{
						Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/split"}},
						Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
							WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
								{Name: v1, Weight: wrapperspb.UInt32(70)}, {Name: v2, Weight: wrapperspb.UInt32(30)},
							}}}}},
					},
					{
						Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
						Action: &routev3.Route_Route{Route: &routev3.RouteAction{
							ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: v1}, Timeout: durationpb.New(5 * time.Second)}},
					},
				},
			}}}},
			typeSecret: {
				&tlsv3.Secret{Name: secretCert, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: inline(chainPEM), PrivateKey: inline("-----BEGIN " + keyMarker + "-----\nsecret\n")}}},
				&tlsv3.Secret{Name: secretRoot, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: inline(rootPEM)}}},
			},
		},
	}

	dir := t.TempDir()
	xdsSocket, sdsSocket := filepath.Join(dir, "XDS"), filepath.Join(dir, "sds.sock")
	configPath, reportPath := filepath.Join(dir, "envoy-rev.json"), filepath.Join(dir, "report.json")
	if err := os.WriteFile(configPath, bootstrap(t, xdsSocket, sdsSocket), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"-c", configPath}, testEnv(reportPath)) }()

	// The sockets appear only after the stand-in has started, as the agent's do.
	time.Sleep(200 * time.Millisecond)
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, cp)
	secretv3.RegisterSecretDiscoveryServiceServer(srv, cp)
	for _, socket := range []string{xdsSocket, sdsSocket} {
		ln, err := net.Listen("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
	}
	defer srv.Stop()

	eventually(t, "the report is done and RDS is ACKed", func() bool {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		return readReport(t, reportPath).Done && cp.acked[typeRoute] != ""
	})
	got := readReport(t, reportPath)
	want := report{
		BootstrapValid:  true,
		NodeID:          "sidecar~10.1.2.3~x-7d4f.ns~ns.svc.cluster.local",
		UnresolvedTypes: []string{},
		Clusters:        []string{"bad", v1},
		Listeners:       []string{"0.0.0.0_3000"},
		Routes: map[string]routeSummary{"3000": {VirtualHosts: []virtualHostSummary{{
			Name:    "x.ns.svc.cluster.local:3000",
			Domains: []string{"x.ns.svc.cluster.local", "x"},
			Routes: []routeEntry{
				{Path: "/split", WeightedClusters: []weightedCluster{{Name: v1, Weight: 70}, {Name: v2, Weight: 30}}},
				{Prefix: "/", Cluster: v1, Timeout: "5s"},
			},
		}}}},
		CertChainPEM: chainPEM,
		RootCAPEM:    rootPEM,
		Done:         true,
	}
	if len(got.ValidationErrors) != 1 || !strings.HasPrefix(got.ValidationErrors[0], "cluster bad: invalid Cluster.ConnectTimeout") {
		t.Errorf("validationErrors = %q, want one for cluster bad's connect timeout", got.ValidationErrors)
	}
	got.ValidationErrors = nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	raw, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), keyMarker) {
		t.Error("the report contains the private key")
	}

	cp.mu.Lock()
	wantAcks := map[string]string{typeListener: "v1", typeRoute: "v1", typeSecret: "v1"}
	if diff := cmp.Diff(wantAcks, cp.acked); diff != "" {
		t.Errorf("ACKed versions (-want +got):\n%s", diff)
	}
	if !strings.Contains(cp.nacked[typeCluster], "bad: invalid Cluster.ConnectTimeout") {
		t.Errorf("CDS NACK = %q, want one naming cluster bad", cp.nacked[typeCluster])
	}
	for _, id := range cp.nodeIDs {
		if id != want.NodeID {
			t.Errorf("a request came from node %q, want %q", id, want.NodeID)
		}
	}
	cp.mu.Unlock()

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit code after the signal = %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPorts(t *testing.T) {
	tests := map[string]struct {
		handler  func(st *state, quit func()) http.Handler
		method   string
		target   string
		done     bool
		wantCode int
		wantBody string
		wantQuit bool
	}{
		"admin /ready before config":    {handler: adminHandler, method: "GET", target: "/ready", wantCode: 503, wantBody: "INITIALIZING\n"},
		"admin /ready after config":     {handler: adminHandler, method: "GET", target: "/ready", done: true, wantCode: 200, wantBody: "LIVE\n"},
		"readiness stats before":        {handler: adminHandler, method: "GET", target: `/stats?usedonly&filter=^(server\.state|listener_manager\.workers_started)`, wantCode: 200, wantBody: "listener_manager.workers_started: 0\nserver.state: 3\n"},
		"readiness stats after":         {handler: adminHandler, method: "GET", target: `/stats?usedonly&filter=^(server\.state|listener_manager\.workers_started)`, done: true, wantCode: 200, wantBody: "listener_manager.workers_started: 1\nserver.state: 0\n"},
		"drain listeners":               {handler: adminHandler, method: "POST", target: "/drain_listeners?graceful", wantCode: 200},
		"quitquitquit":                  {handler: adminHandler, method: "POST", target: "/quitquitquit", wantCode: 200, wantBody: "OK\n", wantQuit: true},
		"healthz before config":         {handler: withoutQuit(healthHandler), method: "GET", target: "/healthz/ready", wantCode: 503, wantBody: "not ready\n"},
		"healthz after config":          {handler: withoutQuit(healthHandler), method: "GET", target: "/healthz/ready", done: true, wantCode: 200, wantBody: "ready"},
		"prometheus":                    {handler: func(*state, func()) http.Handler { return prometheusHandler() }, method: "GET", target: "/stats/prometheus", wantCode: 200, wantBody: "meshwarden_envoy_standin_up 1\n"},
		"unknown path on the admin API": {handler: adminHandler, method: "GET", target: "/clusters", wantCode: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := newState(filepath.Join(t.TempDir(), "report.json"))
			st.rep.Done = tc.done
			quit := false
			rec := httptest.NewRecorder()
			tc.handler(st, func() { quit = true }).ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, nil))
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody || quit != tc.wantQuit {
				t.Errorf("%s %s = %d %q, quit %t; want %d %q, quit %t",
					tc.method, tc.target, rec.Code, rec.Body.String(), quit, tc.wantCode, tc.wantBody, tc.wantQuit)
			}
		})
	}
}

func withoutQuit(h func(*state) http.Handler) func(*state, func()) http.Handler {
	return func(st *state, _ func()) http.Handler { return h(st) }
}

// TestCapturePort checks the answer's form. Without an iptables redirect there is no original
// destination to report, or conntrack reports the port itself, so only the prefix is fixed.
func TestCapturePort(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveCapture(ln, 15001)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "standin:15001 ") {
		t.Errorf("capture port answered %q, %v; want a line starting %q", line, err, "standin:15001 ")
	}
}
