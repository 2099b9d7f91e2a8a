package inject

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/capture"
	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/templates"
)

func newInjector(t testing.TB, mutate func(*config.Config)) *Injector {
	t.Helper()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	in, err := New(cfg, StaticTemplates{Set: templates.Default()})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// envoyProfile configures the envoy profile, for tests of the stock-Envoy template.
func envoyProfile(c *config.Config) {
	c.Injection.Profile = config.ProfileEnvoy
	c.Injection.XDSAddress = "xds.example.svc:15010"
	c.Injection.Templates = []string{"sidecar"}
}

// podJSON builds a one-container pod with the given labels and annotations.
func podJSON(labels, annotations map[string]string) []byte {
	p := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
	b, _ := json.Marshal(p)
	return b
}

var enabledNS = Namespace{Name: "shop", Labels: map[string]string{NamespaceLabel: "enabled"}}

// injectedPod injects and returns the resulting pod.
func injectedPod(t *testing.T, in *Injector, raw []byte) (*corev1.Pod, Result) {
	t.Helper()
	res, err := in.Inject(Request{Pod: raw, Namespace: enabledNS})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ApplyPatch(raw, res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatal(err)
	}
	return &pod, res
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func TestDecide(t *testing.T) {
	never := []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "batch"}}}
	always := []metav1.LabelSelector{{MatchLabels: map[string]string{"mesh": "yes"}}, {MatchLabels: map[string]string{"tier": "batch"}}}
	cases := map[string]struct {
		policy       config.Policy
		ns           Namespace
		labels       map[string]string
		annotations  map[string]string
		hostNetwork  bool
		nodeSelector map[string]string
		want         Reason
	}{
		"enabled namespace":               {ns: enabledNS, want: InjectNamespaceEnabled},
		"unlabelled namespace":            {ns: Namespace{Name: "plain"}, want: SkipNamespaceNotEnabled},
		"disabled namespace":              {ns: Namespace{Name: "x", Labels: map[string]string{NamespaceLabel: "disabled"}}, want: SkipNamespaceDisabled},
		"pod opts in, namespace off":      {ns: Namespace{Name: "plain"}, labels: map[string]string{LabelInject: "true"}, want: InjectPodLabel},
		"pod opts in, namespace disabled": {ns: Namespace{Name: "x", Labels: map[string]string{NamespaceLabel: "disabled"}}, labels: map[string]string{LabelInject: "true"}, want: InjectPodLabel},
		"pod opts out":                    {ns: enabledNS, labels: map[string]string{LabelInject: "false"}, want: SkipPodOptOut},
		"annotation opts out":             {ns: enabledNS, annotations: map[string]string{LabelInject: "false"}, want: SkipPodOptOut},
		"label wins over annotation":      {ns: enabledNS, labels: map[string]string{LabelInject: "true"}, annotations: map[string]string{LabelInject: "false"}, want: InjectPodLabel},
		"host network":                    {ns: enabledNS, hostNetwork: true, labels: map[string]string{LabelInject: "true"}, want: SkipHostNetwork},
		"kube-system":                     {ns: Namespace{Name: "kube-system", Labels: map[string]string{NamespaceLabel: "enabled"}}, want: SkipSystemNamespace},
		"kube-node-lease":                 {ns: Namespace{Name: "kube-node-lease"}, labels: map[string]string{LabelInject: "true"}, want: SkipSystemNamespace},
		"own namespace":                   {ns: Namespace{Name: "meshwarden", Labels: map[string]string{NamespaceLabel: "enabled"}}, want: SkipOwnNamespace},
		"never wins over always":          {ns: enabledNS, labels: map[string]string{"tier": "batch"}, want: SkipNeverSelector},
		"always selector":                 {ns: enabledNS, policy: config.PolicyDisabled, labels: map[string]string{"mesh": "yes"}, want: InjectAlwaysSelector},
		"policy disabled":                 {ns: enabledNS, policy: config.PolicyDisabled, want: SkipPolicyDisabled},
		"policy disabled, pod opts in":    {ns: enabledNS, policy: config.PolicyDisabled, labels: map[string]string{LabelInject: "true"}, want: InjectPodLabel},
		"istio injected it":               {ns: enabledNS, annotations: map[string]string{"sidecar.istio.io/status": "{}"}, want: SkipOtherMesh},
		"linkerd injected it, opted in":   {ns: enabledNS, labels: map[string]string{LabelInject: "true"}, annotations: map[string]string{"linkerd.io/proxy-version": "x"}, want: SkipOtherMesh},
		"kuma says not injected":          {ns: enabledNS, annotations: map[string]string{"kuma.io/sidecar-injected": "false"}, want: InjectNamespaceEnabled},
		"windows by node selector":        {ns: enabledNS, nodeSelector: map[string]string{"kubernetes.io/os": "windows"}, want: SkipWindows},
		"linux by node selector":          {ns: enabledNS, nodeSelector: map[string]string{"kubernetes.io/os": "linux"}, want: InjectNamespaceEnabled},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := newInjector(t, func(c *config.Config) {
				c.Injection.NeverInjectSelector, c.Injection.AlwaysInjectSelector = never, always
				if tc.policy != "" {
					c.Injection.DefaultPolicy = tc.policy
				}
			})
			var pod corev1.Pod
			_ = json.Unmarshal(podJSON(tc.labels, tc.annotations), &pod)
			pod.Spec.HostNetwork = tc.hostNetwork
			pod.Spec.NodeSelector = tc.nodeSelector
			raw, _ := json.Marshal(pod)
			res, err := in.Inject(Request{Pod: raw, Namespace: tc.ns})
			if err != nil {
				t.Fatal(err)
			}
			if res.Reason != tc.want {
				t.Fatalf("reason %q (%s), want %q", res.Reason, res.Reason.Sentence(), tc.want)
			}
			if wantInjected := tc.want == InjectPodLabel || tc.want == InjectNamespaceEnabled || tc.want == InjectAlwaysSelector; res.Injected != wantInjected {
				t.Fatalf("injected=%v for %q", res.Injected, tc.want)
			}
			if tc.want.Sentence() == "" {
				t.Fatalf("reason %q has no sentence", tc.want)
			}
		})
	}
}

func TestInvalidInjectLabelIsDenied(t *testing.T) {
	in := newInjector(t, nil)
	res, err := in.Inject(Request{Pod: podJSON(map[string]string{LabelInject: "yes", "x": "y"}, nil), Namespace: enabledNS})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Denied) != 1 || !strings.Contains(res.Denied[0].Error(), "metadata.labels[sidecar.meshwarden.io/inject]") {
		t.Fatalf("want one denial naming the label, got %v", res.Denied)
	}
}

// TestBootstrapValidates checks the rendered bootstrap against Envoy's own API definitions.
func TestBootstrapValidates(t *testing.T) {
	for name, tc := range map[string]struct {
		xds    string
		status int32
		tls    *xdsTLS
	}{
		"defaults":           {"meshwarden-xds.meshwarden.svc:15010", 15021, nil},
		"istiod":             {"istiod.istio-system.svc:15012", 15021, nil},
		"custom status port": {"xds.example.com:443", 16021, nil},
		"tls":                {"xds.example.com:443", 15021, &xdsTLS{secretName: "xds-ca"}},
		"mutual tls":         {"10.0.0.5:18000", 15021, &xdsTLS{secretName: "xds-pair", clientCert: true, serverName: "xds.example.com"}},
	} {
		t.Run(name, func(t *testing.T) {
			var b bootstrapv3.Bootstrap
			if err := protojson.Unmarshal([]byte(envoyBootstrap(tc.xds, tc.status, tc.tls)), &b); err != nil {
				t.Fatalf("bootstrap does not decode as envoy.config.bootstrap.v3.Bootstrap: %v", err)
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("bootstrap fails Envoy's validation: %v", err)
			}
			if got := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); got != "127.0.0.1" {
				t.Errorf("admin listens on %q, want 127.0.0.1 only", got)
			}
			if got := b.GetNode().GetId(); got != "$(POD_NAME).$(POD_NAMESPACE)" {
				t.Errorf("node id %q", got)
			}
			if b.GetDynamicResources().GetAdsConfig() == nil {
				t.Error("no ADS config")
			}
			// IPv6-only pods have no 0.0.0.0: the listeners the kubelet probes take both families.
			for _, l := range b.GetStaticResources().GetListeners() {
				if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "::" || !sa.GetIpv4Compat() {
					t.Errorf("listener %s on %s (ipv4_compat %v), want :: with IPv4 too", l.GetName(), sa.GetAddress(), sa.GetIpv4Compat())
				}
			}
			xds := b.GetStaticResources().GetClusters()[0]
			ts := xds.GetTransportSocket()
			if tc.tls == nil {
				if ts != nil {
					t.Fatalf("plaintext ADS has a transport socket %v", ts)
				}
				return
			}
			var tlsCtx tlsv3.UpstreamTlsContext
			if ts == nil || ts.GetTypedConfig().UnmarshalTo(&tlsCtx) != nil {
				t.Fatalf("ADS over TLS has transport socket %v", ts)
			}
			wantSNI := tc.tls.serverName
			if wantSNI == "" {
				wantSNI, _, _ = net.SplitHostPort(tc.xds)
			}
			if tlsCtx.GetSni() != wantSNI {
				t.Errorf("SNI %q, want %q", tlsCtx.GetSni(), wantSNI)
			}
			common := tlsCtx.GetCommonTlsContext()
			if got := common.GetValidationContext().GetTrustedCa().GetFilename(); got != XDSTLSDir+"/ca.crt" {
				t.Errorf("trusted CA %q", got)
			}
			if got := common.GetValidationContext().GetMatchTypedSubjectAltNames(); len(got) != 1 || got[0].GetMatcher().GetExact() != wantSNI {
				t.Errorf("server SAN match %v, want %s", got, wantSNI)
			}
			if has := len(common.GetTlsCertificates()) == 1; has != tc.tls.clientCert {
				t.Errorf("client certificate present %v, want %v", has, tc.tls.clientCert)
			}
		})
	}
}

// TestXDSTLSMountsTheSecret: the envoy profile with xdsTLS mounts the Secret where the bootstrap
// reads it, read-only.
func TestXDSTLSMountsTheSecret(t *testing.T) {
	in := newInjector(t, func(c *config.Config) {
		envoyProfile(c)
		c.Injection.XDSTLS = &config.XDSTLS{SecretName: "xds-client", ClientCertificate: true}
	})
	pod, _ := injectedPod(t, in, podJSON(nil, nil))
	proxy := findContainer(pod, ProxyName)
	var mounted bool
	for _, m := range proxy.VolumeMounts {
		mounted = mounted || (m.Name == "meshwarden-xds-tls" && m.MountPath == XDSTLSDir && m.ReadOnly)
	}
	var secret string
	for _, v := range pod.Spec.Volumes {
		if v.Name == "meshwarden-xds-tls" && v.Secret != nil {
			secret = v.Secret.SecretName
		}
	}
	if !mounted || secret != "xds-client" {
		t.Fatalf("xds TLS Secret mounted %v from %q, want read-only at %s from xds-client", mounted, secret, XDSTLSDir)
	}
}

// TestProxyGetsBootstrapArgs checks the injected proxy carries the bootstrap and the downward-API env
// that kubelet expands in it.
func TestProxyGetsBootstrapArgs(t *testing.T) {
	pod, _ := injectedPod(t, newInjector(t, envoyProfile), podJSON(nil, nil))
	proxy := findContainer(pod, ProxyName)
	if proxy == nil || len(proxy.Args) < 2 || proxy.Args[0] != "--config-yaml" {
		t.Fatalf("proxy args %v", proxy)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal([]byte(proxy.Args[1]), &b); err != nil {
		t.Fatal(err)
	}
	envs := map[string]string{}
	for _, e := range proxy.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			envs[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if diff := cmp.Diff(map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}, envs); diff != "" {
		t.Fatal(diff)
	}
}

// TestCaptureArgsParseWithInitParser keeps the template and meshwarden-init in step: every rendered
// argument list must parse with meshwarden-init's own parser and mean what the annotations said.
func TestCaptureArgsParseWithInitParser(t *testing.T) {
	cases := map[string]struct {
		annotations map[string]string
		check       func(t *testing.T, c capture.Config)
	}{
		"defaults": {nil, func(t *testing.T, c capture.Config) {
			if c.Mode != capture.ModeRedirect || c.ProxyUID != 1337 || c.OutboundPort != 15001 || c.InboundPort != 15006 || !c.AllOutboundCIDRs || !c.AllInboundPorts {
				t.Fatalf("defaults parsed as %+v", c)
			}
		}},
		"every traffic annotation": {map[string]string{
			AnnInterception:            "TPROXY",
			AnnStatusPort:              "15030",
			AnnIncludeOutboundIPRanges: "10.0.0.0/8,fd00::/8",
			AnnExcludeOutboundIPRanges: "10.96.0.1/32",
			AnnIncludeInboundPorts:     "8080,9090",
			AnnExcludeInboundPorts:     "9090",
			AnnIncludeOutboundPorts:    "443",
			AnnExcludeOutboundPorts:    "25",
		}, func(t *testing.T, c capture.Config) {
			if c.Mode != capture.ModeTProxy || c.AllOutboundCIDRs || len(c.IncludeOutboundCIDRs) != 2 || len(c.ExcludeOutboundCIDRs) != 1 ||
				len(c.IncludeInboundPorts) != 2 || len(c.ExcludeInboundPorts) != 1 || len(c.IncludeOutboundPorts) != 1 || len(c.ExcludeOutboundPorts) != 1 {
				t.Fatalf("parsed as %+v", c)
			}
			found := false
			for _, p := range c.ProxyPorts {
				found = found || p == 15030
			}
			if !found {
				t.Fatalf("status port 15030 not among proxy ports %v", c.ProxyPorts)
			}
		}},
		"no inbound capture": {map[string]string{AnnIncludeInboundPorts: ""}, func(t *testing.T, c capture.Config) {
			if c.AllInboundPorts || len(c.IncludeInboundPorts) != 0 {
				t.Fatalf("empty includeInboundPorts parsed as %+v", c)
			}
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pod, res := injectedPod(t, newInjector(t, envoyProfile), podJSON(nil, tc.annotations))
			if !res.Injected {
				t.Fatalf("not injected: %v %v", res.Reason, res.Denied)
			}
			init := findContainer(pod, InitName)
			c, err := capture.ParseArgs(init.Args)
			if err != nil {
				t.Fatalf("meshwarden-init rejects the template's args %q: %v", init.Args, err)
			}
			tc.check(t, c)
		})
	}
}
