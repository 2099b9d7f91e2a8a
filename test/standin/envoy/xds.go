package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeSecret   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

	secretCert = "default" // the workload's certificate chain and key
	secretRoot = "ROOTCA"  // the roots to validate peers against
)

// resource is what every xDS resource type offers: a name and protoc-gen-validate's rules.
type resource interface {
	proto.Message
	GetName() string
	ValidateAll() error
}

// dial connects to one of the agent's unix sockets once it exists. The agent creates them some
// time after starting Envoy, and gRPC would otherwise wait on a path that is not there.
func dial(socket string) (*grpc.ClientConn, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, err
	}
	return grpc.NewClient("unix://"+absPath(socket), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// runADS is one ADS stream's life: ask for clusters and listeners, then for the routes the
// listeners name, and answer every response as Envoy does. It returns when the stream breaks.
func runADS(ctx context.Context, socket string, node *corev3.Node, st *state) error {
	conn, err := dial(socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	// last is the request last sent per type: the next one repeats its resource names and,
	// on a NACK, its version.
	last := map[string]*discoveryv3.DiscoveryRequest{}
	send := func(req *discoveryv3.DiscoveryRequest) error {
		req.Node = node
		last[req.TypeUrl] = req
		return stream.Send(req)
	}
	for _, typeURL := range []string{typeCluster, typeListener} { // empty names: all of them
		if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: typeURL}); err != nil {
			return err
		}
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		var invalid map[string]string
		var routeNames []string
		switch resp.GetTypeUrl() {
		case typeCluster:
			clusters, bad := decode(resp, func() *clusterv3.Cluster { return &clusterv3.Cluster{} })
			st.setResources("cluster", names(clusters), bad, func(r *report) { r.Clusters = names(clusters) })
			invalid = bad
		case typeListener:
			listeners, bad := decode(resp, func() *listenerv3.Listener { return &listenerv3.Listener{} })
			st.setResources("listener", names(listeners), bad, func(r *report) { r.Listeners = names(listeners) })
			invalid, routeNames = bad, rdsNames(listeners)
		case typeRoute:
			routes, bad := decode(resp, func() *routev3.RouteConfiguration { return &routev3.RouteConfiguration{} })
			st.setResources("route", names(routes), bad, func(r *report) {
				for _, rc := range routes {
					r.Routes[rc.GetName()] = summarizeRoute(rc)
				}
			})
			invalid = bad
		}
		logResponse(resp, invalid)
		if err := send(answer(resp, last[resp.GetTypeUrl()], invalid)); err != nil {
			return err
		}
		if resp.GetTypeUrl() == typeListener && !slices.Equal(routeNames, last[typeRoute].GetResourceNames()) {
			st.setRouteNames(routeNames)
			if len(routeNames) == 0 {
				continue // no names would mean every route to the server, not none
			}
			rds := &discoveryv3.DiscoveryRequest{TypeUrl: typeRoute, ResourceNames: routeNames}
			if prev := last[typeRoute]; prev != nil {
				rds.VersionInfo, rds.ResponseNonce = prev.GetVersionInfo(), prev.GetResponseNonce()
			}
			if err := send(rds); err != nil {
				return err
			}
		}
	}
}

// runSDS fetches one secret over its own stream, as Envoy opens one SDS subscription per secret.
func runSDS(ctx context.Context, socket, name string, node *corev3.Node, st *state) error {
	conn, err := dial(socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeSecret, ResourceNames: []string{name}}
	for {
		if err := stream.Send(req); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		secrets, invalid := decode(resp, func() *tlsv3.Secret { return &tlsv3.Secret{} })
		// Only the public halves are kept: the private key never leaves the response.
		st.setResources("secret", names(secrets), invalid, func(r *report) {
			for _, s := range secrets {
				switch s.GetName() {
				case secretCert:
					r.CertChainPEM = inlineText(s.GetTlsCertificate().GetCertificateChain())
				case secretRoot:
					r.RootCAPEM = inlineText(s.GetValidationContext().GetTrustedCa())
				}
			}
		})
		logResponse(resp, invalid)
		req = answer(resp, req, invalid)
	}
}

// decode unpacks a response's resources and checks each against its validation rules; invalid
// maps the name of each resource that fails to why.
func decode[T resource](resp *discoveryv3.DiscoveryResponse, newT func() T) (items []T, invalid map[string]string) {
	invalid = map[string]string{}
	for i, a := range resp.GetResources() {
		item := newT()
		if err := a.UnmarshalTo(item); err != nil {
			invalid[fmt.Sprintf("#%d", i)] = err.Error()
			continue
		}
		if err := item.ValidateAll(); err != nil {
			invalid[item.GetName()] = err.Error()
		}
		items = append(items, item)
	}
	return items, invalid
}

// answer is Envoy's reply to a response: an ACK naming its version and nonce or, when a resource
// is invalid, a NACK that keeps the version last accepted and says why.
func answer(resp *discoveryv3.DiscoveryResponse, prev *discoveryv3.DiscoveryRequest, invalid map[string]string) *discoveryv3.DiscoveryRequest {
	req := &discoveryv3.DiscoveryRequest{
		Node:          prev.GetNode(),
		TypeUrl:       resp.GetTypeUrl(),
		VersionInfo:   resp.GetVersionInfo(),
		ResourceNames: prev.GetResourceNames(),
		ResponseNonce: resp.GetNonce(),
	}
	if len(invalid) > 0 {
		var why []string
		for name, err := range invalid {
			why = append(why, name+": "+err)
		}
		slices.Sort(why)
		req.VersionInfo = prev.GetVersionInfo()
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: strings.Join(why, "; ")}
	}
	return req
}

// logResponse says briefly what arrived; resources themselves are never logged, as secrets hold keys.
func logResponse(resp *discoveryv3.DiscoveryResponse, invalid map[string]string) {
	answer := "ACK"
	if len(invalid) > 0 {
		answer = fmt.Sprintf("NACK (%d invalid)", len(invalid))
	}
	typeName := resp.GetTypeUrl()[strings.LastIndex(resp.GetTypeUrl(), ".")+1:]
	log.Printf("%s version %q: %d resources, %s", typeName, resp.GetVersionInfo(), len(resp.GetResources()), answer)
}

// rdsNames lists, sorted and once each, the route configurations that the listeners' HTTP
// connection managers load over RDS. Istio names its outbound HTTP routes by port ("3000").
func rdsNames(listeners []*listenerv3.Listener) []string {
	var out []string
	for _, l := range listeners {
		for _, fc := range append(slices.Clone(l.GetFilterChains()), l.GetDefaultFilterChain()) {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if tc := f.GetTypedConfig(); tc == nil || !tc.MessageIs(hcm) || tc.UnmarshalTo(hcm) != nil {
					continue
				}
				if name := hcm.GetRds().GetRouteConfigName(); name != "" {
					out = append(out, name)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// summarizeRoute keeps what a test asserts about routing: where each match goes, and how long it
// may take.
func summarizeRoute(rc *routev3.RouteConfiguration) routeSummary {
	var s routeSummary
	for _, vh := range rc.GetVirtualHosts() {
		v := virtualHostSummary{Name: vh.GetName(), Domains: vh.GetDomains(), Routes: []routeEntry{}}
		for _, r := range vh.GetRoutes() {
			action := r.GetRoute()
			e := routeEntry{Prefix: r.GetMatch().GetPrefix(), Path: r.GetMatch().GetPath(), Cluster: action.GetCluster()}
			for _, wc := range action.GetWeightedClusters().GetClusters() {
				e.WeightedClusters = append(e.WeightedClusters, weightedCluster{Name: wc.GetName(), Weight: wc.GetWeight().GetValue()})
			}
			if t := action.GetTimeout(); t != nil {
				e.Timeout = t.AsDuration().String()
			}
			v.Routes = append(v.Routes, e)
		}
		s.VirtualHosts = append(s.VirtualHosts, v)
	}
	return s
}

func names[T resource](items []T) []string {
	out := []string{}
	for _, item := range items {
		out = append(out, item.GetName())
	}
	slices.Sort(out)
	return out
}

// inlineText is a PEM carried inline, as the agent's SDS sends it.
func inlineText(ds *corev3.DataSource) string {
	if b := ds.GetInlineBytes(); len(b) > 0 {
		return string(b)
	}
	return ds.GetInlineString()
}
