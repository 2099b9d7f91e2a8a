// Command envoy is a TEST STAND-IN for Envoy. It is never shipped in an image or a release: it
// exists only so that the end-to-end test can run Istio's real pilot-agent, which starts "Envoy"
// at Envoy's binary path, on a machine where the C++ Envoy cannot run.
//
// It checks what the test cannot see otherwise, and records it in a JSON report (type report):
//   - the bootstrap pilot-agent wrote (the -c / --config-path flag) decodes into
//     envoy.config.bootstrap.v3.Bootstrap and passes its protoc-gen-validate rules, as Envoy would
//     insist at start-up (a failure is written to the report and exits 1);
//   - over the agent's xDS socket it fetches clusters, listeners and the routes the listeners name,
//     with state-of-the-world ADS, ACKing (or NACKing invalid resources) as Envoy does;
//   - over the agent's SDS socket it fetches the workload certificate ("default") and the root
//     ("ROOTCA");
//   - every resource received passes its validation rules (failures are listed, not fatal).
//
// The report is rewritten as config arrives and "done" is set once everything has; the streams
// then stay open, as Envoy's do, so later pushes are recorded too. If not everything has arrived
// within the timeout, the streams stop and "fetchError" names what is missing.
//
// Like Envoy it also answers on its well-known ports: 15000 (admin: /ready, /stats, /quitquitquit),
// 15001 and 15006 (capture: one line "standin:<port> <original destination>"), 15021
// (/healthz/ready) and 15090 (/stats/prometheus). All other Envoy flags are accepted and ignored.
//
// Environment:
//
//	MESHWARDEN_STANDIN_REPORT        report path (default ./envoy-standin-report.json, from cwd)
//	MESHWARDEN_STANDIN_TIMEOUT       how long to wait for all config, a Go duration (default 60s)
//	MESHWARDEN_STANDIN_NO_LISTENERS  "1": do not bind the 15xxx ports (unit tests)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"sigs.k8s.io/yaml"

	// The bootstrap's typed configs are google.protobuf.Any, which protojson can decode only
	// for types linked into the binary. These are the extension @types of Istio's bootstrap
	// template (tools/packaging/common/envoy_bootstrap.json); bootstrapv3 already links the
	// core ones (trace, metrics) and xds.type.v3.TypedStruct, and xds.go the HTTP connection
	// manager and TLS.
	_ "github.com/cncf/xds/go/udpa/type/v1"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/bootstrap/internal_listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/brotli/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/gzip/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/zstd/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/proxy_protocol/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// The sockets pilot-agent serves, relative to its working directory (the container root); used
// only when the bootstrap does not name them.
const (
	defaultXDSSocket = "./etc/istio/proxy/XDS"
	defaultSDSSocket = "./var/run/secrets/workload-spiffe-uds/socket"
)

func main() {
	log.SetPrefix("envoy-standin: ") // pilot-agent copies this into its own log
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv)
	stop()
	os.Exit(code)
}

// run is the whole program short of process exit, so that the unit test can drive it. It returns
// 0 when ctx ends (SIGTERM/SIGINT) or the admin API is told to quit, and 1 on a bad start.
func run(ctx context.Context, args []string, getenv func(string) string) int {
	reportPath := getenv("MESHWARDEN_STANDIN_REPORT")
	if reportPath == "" {
		reportPath = "envoy-standin-report.json"
	}
	st := newState(reportPath)
	timeout := 60 * time.Second
	if v := getenv("MESHWARDEN_STANDIN_TIMEOUT"); v != "" {
		var err error
		if timeout, err = time.ParseDuration(v); err != nil {
			return st.fatal(fmt.Errorf("MESHWARDEN_STANDIN_TIMEOUT: %w", err))
		}
	}

	configPath, err := configPathFromArgs(args)
	if err != nil {
		return st.fatal(err)
	}
	bs, unresolved, err := loadBootstrap(configPath)
	if err != nil {
		return st.fatal(err)
	}
	st.update(func(r *report) {
		r.BootstrapValid = true
		r.NodeID = bs.GetNode().GetId()
		r.UnresolvedTypes = append(r.UnresolvedTypes, unresolved...)
	})
	log.Printf("bootstrap %s is valid (node %s)", configPath, bs.GetNode().GetId())

	quit := make(chan struct{})
	if getenv("MESHWARDEN_STANDIN_NO_LISTENERS") != "1" {
		stopListeners := serveListeners(st, once(func() { close(quit) }))
		defer stopListeners()
	}

	// The streams live as long as the process, as Envoy's do, so that later pushes are recorded
	// too; only the wait for the first complete set of config is bounded.
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	node := envoyNode(bs.GetNode())
	xdsSocket := pipePath(bs, "xds-grpc", defaultXDSSocket)
	sdsSocket := pipePath(bs, "sds-grpc", defaultSDSSocket)
	go retry(streamCtx, "xds "+xdsSocket, func(ctx context.Context) error { return runADS(ctx, xdsSocket, node, st) })
	for _, name := range []string{secretCert, secretRoot} {
		go retry(streamCtx, "sds "+name, func(ctx context.Context) error { return runSDS(ctx, sdsSocket, name, node, st) })
	}

	done := st.done
	giveUp := time.NewTimer(timeout)
	defer giveUp.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Printf("signalled, exiting")
			return 0
		case <-quit:
			log.Printf("told to quit by the admin API, exiting")
			return 0
		case <-done:
			log.Printf("all config received")
			done = nil // a nil channel never fires again
		case <-giveUp.C:
			if done != nil {
				msg := fmt.Sprintf("gave up after %s; still missing: %s", timeout, st.missing())
				log.Print(msg)
				st.update(func(r *report) { r.FetchError = msg })
				stopStreams()
			}
		}
	}
}

// configPathFromArgs finds Envoy's -c / --config-path among Envoy's many other flags. The flag
// package is not used because it rejects flags it was not told about.
func configPathFromArgs(args []string) (string, error) {
	for i, a := range args {
		for _, name := range []string{"-c", "--config-path"} {
			if a == name && i+1 < len(args) {
				return args[i+1], nil
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v, nil
			}
		}
	}
	return "", errors.New("no -c or --config-path flag: nothing to validate")
}

// loadBootstrap reads the bootstrap (JSON or YAML, as Envoy accepts), decodes it strictly and
// runs its validation rules. It also returns the @types of extensions it could not decode.
func loadBootstrap(path string) (*bootstrapv3.Bootstrap, []string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read bootstrap: %w", err)
	}
	if !json.Valid(raw) {
		if raw, err = yaml.YAMLToJSON(raw); err != nil {
			return nil, nil, fmt.Errorf("bootstrap %s is neither JSON nor YAML: %w", path, err)
		}
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep 64-bit integers exact on the way through
	if err := dec.Decode(&tree); err != nil {
		return nil, nil, fmt.Errorf("decode bootstrap: %w", err)
	}
	unresolved, err := wrapUnknownAnys(tree)
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(unresolved)
	unresolved = slices.Compact(unresolved)
	if raw, err = json.Marshal(tree); err != nil {
		return nil, nil, err
	}
	bs := &bootstrapv3.Bootstrap{}
	// Unknown fields stay errors: Envoy rejects a bootstrap field it does not know.
	if err := protojson.Unmarshal(raw, bs); err != nil {
		return nil, nil, fmt.Errorf("decode bootstrap as envoy.config.bootstrap.v3.Bootstrap: %w", err)
	}
	if err := bs.ValidateAll(); err != nil {
		return nil, nil, fmt.Errorf("bootstrap fails validation: %w", err)
	}
	return bs, unresolved, nil
}

// wrapUnknownAnys walks decoded JSON and rewraps each Any whose @type is not linked into this
// binary as a google.protobuf.Struct, so that one extension this stand-in lacks does not hide the
// rest of the bootstrap. Validation rules never look inside an Any, so nothing is lost but the
// extension's own decoding. A core Envoy type (envoy.* outside envoy.extensions.*) that does not
// resolve is an error: every core type is linked in, so the bootstrap names one that does not exist.
func wrapUnknownAnys(node any) (unresolved []string, err error) {
	switch n := node.(type) {
	case []any:
		for _, v := range n {
			u, err := wrapUnknownAnys(v)
			if err != nil {
				return nil, err
			}
			unresolved = append(unresolved, u...)
		}
	case map[string]any:
		if typeURL, ok := n["@type"].(string); ok {
			name := typeURL[strings.LastIndex(typeURL, "/")+1:]
			if _, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL); err != nil {
				if strings.HasPrefix(name, "envoy.") && !strings.HasPrefix(name, "envoy.extensions.") {
					return nil, fmt.Errorf("bootstrap names core type %q, which Envoy does not have", typeURL)
				}
				value := map[string]any{}
				for k, v := range n {
					if k != "@type" {
						value[k] = v
						delete(n, k)
					}
				}
				n["@type"], n["value"] = "type.googleapis.com/google.protobuf.Struct", value
				return []string{name}, nil
			}
			// A TypedStruct's value is free-form (it describes a type by name), not an Any.
			if strings.HasSuffix(name, ".TypedStruct") {
				return nil, nil
			}
		}
		for _, v := range n {
			u, err := wrapUnknownAnys(v)
			if err != nil {
				return nil, err
			}
			unresolved = append(unresolved, u...)
		}
	}
	return unresolved, nil
}

// pipePath returns the unix socket path of a static cluster's first endpoint, where pilot-agent's
// bootstrap points Envoy at the agent.
func pipePath(bs *bootstrapv3.Bootstrap, cluster, fallback string) string {
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() != cluster {
			continue
		}
		for _, eps := range c.GetLoadAssignment().GetEndpoints() {
			for _, ep := range eps.GetLbEndpoints() {
				if p := ep.GetEndpoint().GetAddress().GetPipe().GetPath(); p != "" {
					return p
				}
			}
		}
	}
	return fallback
}

// envoyNode is the node sent to the control plane: the bootstrap's, carrying the id, cluster and
// metadata istiod needs, introduced as Envoy introduces itself.
func envoyNode(n *corev3.Node) *corev3.Node {
	node := proto.Clone(n).(*corev3.Node)
	if node.UserAgentName == "" {
		node.UserAgentName = "envoy"
	}
	return node
}

// retry runs f until ctx ends, pausing between attempts; the agent may not have created its
// sockets yet, or may restart them. An error is logged once until it changes.
func retry(ctx context.Context, what string, f func(context.Context) error) {
	last := ""
	for ctx.Err() == nil {
		err := f(ctx)
		if ctx.Err() != nil {
			return
		}
		if msg := fmt.Sprint(err); msg != last {
			log.Printf("%s: %s (retrying)", what, msg)
			last = msg
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// absPath resolves a socket path against the working directory, which pilot-agent treats as the
// container root, for a gRPC "unix://" target.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
