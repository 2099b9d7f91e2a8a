package inject

import (
	"encoding/json"
	"net"
	"strconv"
)

// XDSTLSDir is where the envoy profile mounts the xdsTLS Secret (ca.crt, tls.crt, tls.key).
const XDSTLSDir = "/etc/meshwarden/xds-tls"

// xdsTLS is the envoy profile's TLS to its xDS server; comparable, as part of the render cache key.
type xdsTLS struct {
	secretName, serverName string
	clientCert             bool
}

// envoyBootstrap builds the proxy's bootstrap. It is built as data in Go rather than templated text
// so that it is always well-formed; tests validate it against Envoy's own API (go-control-plane).
//
// The node id is "$(POD_NAME).$(POD_NAMESPACE)": kubelet expands those in container args from the
// downward-API env vars the template sets, so the id is right even for pods that have only a
// generateName at admission time.
//
// Listeners bind "::" with ipv4_compat, so the kubelet's probes reach them in IPv4-only, IPv6-only and
// dual-stack pods alike. With tls, the ADS connection is TLS, verified against tls.caFile.
func envoyBootstrap(xdsAddress string, statusPort int32, tls *xdsTLS) string {
	host, portStr, _ := net.SplitHostPort(xdsAddress) // validated in config
	port, _ := strconv.Atoi(portStr)
	type m = map[string]any
	sock := func(addr string, port int) m {
		return m{"socket_address": m{"address": addr, "port_value": port}}
	}
	anyAddr := func(port int) m {
		return m{"socket_address": m{"address": "::", "ipv4_compat": true, "port_value": port}}
	}
	endpoint := func(name, addr string, port int) m {
		return m{"cluster_name": name, "endpoints": []m{{"lb_endpoints": []m{{"endpoint": m{"address": sock(addr, port)}}}}}}
	}
	router := m{"name": "envoy.filters.http.router", "typed_config": m{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
	// adminListener exposes one admin path on a pod-reachable port; admin itself stays on loopback.
	adminListener := func(name string, port int, match m, rewrite string) m {
		route := m{"cluster": "admin"}
		if rewrite != "" {
			route["prefix_rewrite"] = rewrite
		}
		return m{
			"name":    name,
			"address": anyAddr(port),
			"filter_chains": []m{{"filters": []m{{
				"name": "envoy.filters.network.http_connection_manager",
				"typed_config": m{
					"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
					"stat_prefix": name,
					"route_config": m{"virtual_hosts": []m{{
						"name": name, "domains": []string{"*"},
						"routes": []m{{"match": match, "route": route}},
					}}},
					"http_filters": []m{router},
				},
			}}}},
		}
	}
	b := m{
		"node":  m{"id": "$(POD_NAME).$(POD_NAMESPACE)", "cluster": "$(POD_NAMESPACE)"},
		"admin": m{"address": sock("127.0.0.1", AdminPort)},
		"dynamic_resources": m{
			"ads_config": m{
				"api_type":              "GRPC",
				"transport_api_version": "V3",
				"grpc_services":         []m{{"envoy_grpc": m{"cluster_name": "xds-grpc"}}},
			},
			"cds_config": m{"ads": m{}, "resource_api_version": "V3"},
			"lds_config": m{"ads": m{}, "resource_api_version": "V3"},
		},
		"static_resources": m{
			"clusters": []m{
				{
					"name": "xds-grpc", "type": "STRICT_DNS", "connect_timeout": "1s",
					"load_assignment": endpoint("xds-grpc", host, port),
					"typed_extension_protocol_options": m{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": m{
						"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
						"explicit_http_config": m{"http2_protocol_options": m{}},
					}},
				},
				{
					"name": "admin", "type": "STATIC", "connect_timeout": "1s",
					"load_assignment": endpoint("admin", "127.0.0.1", AdminPort),
				},
			},
			"listeners": []m{
				adminListener("health", int(statusPort), m{"path": "/healthz/ready"}, "/ready"),
				adminListener("prometheus", PromPort, m{"prefix": "/stats/prometheus"}, ""),
			},
		},
	}
	if tls != nil {
		xds := b["static_resources"].(m)["clusters"].([]m)[0]
		serverName := tls.serverName
		if serverName == "" {
			serverName = host
		}
		common := m{"validation_context": m{
			"trusted_ca":                    m{"filename": XDSTLSDir + "/ca.crt"},
			"match_typed_subject_alt_names": []m{{"san_type": "DNS", "matcher": m{"exact": serverName}}},
		}}
		if tls.clientCert {
			common["tls_certificates"] = []m{{
				"certificate_chain": m{"filename": XDSTLSDir + "/tls.crt"},
				"private_key":       m{"filename": XDSTLSDir + "/tls.key"},
			}}
		}
		xds["transport_socket"] = m{"name": "envoy.transport_sockets.tls", "typed_config": m{
			"@type":              "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
			"sni":                serverName,
			"common_tls_context": common,
		}}
	}
	out, _ := json.Marshal(b) // maps of strings and numbers always marshal
	return string(out)
}
