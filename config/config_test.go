package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Injection.Profile != ProfileIstio || c.Injection.Templates[0] != "istio" || c.Injection.XDSAddress != "" {
		t.Fatalf("the default profile is istio with its template and no xdsAddress: %+v", c.Injection)
	}
	for _, img := range []string{c.Injection.ProxyImage, c.Injection.InitImage, c.Injection.Istio.ProxyImage} {
		if strings.HasSuffix(img, ":latest") || !strings.Contains(img, ":") {
			t.Errorf("default image %q is not pinned to a tag", img)
		}
	}
	if c.Injection.Istio.MeshID != "cluster.local" || c.Injection.Istio.ClusterID != "Kubernetes" {
		t.Fatalf("istio node metadata defaults: %+v", c.Injection.Istio)
	}
	if c.Injection.DefaultPolicy != PolicyEnabled || c.Guard.DefaultMode != GuardWarn || c.Certs.Mode != CertSelf || !*c.Injection.NativeSidecar {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want []string
	}{
		"unknown field":    {"injection:\n  proxyCpu: 1\n", []string{`unknown field "injection.proxyCpu"`}},
		"bad policy":       {"injection:\n  defaultPolicy: sometimes\n", []string{`injection.defaultPolicy: Unsupported value: "sometimes"`, `"enabled"`}},
		"bad quantity":     {"injection:\n  proxyCPU: lots\n", []string{`injection.proxyCPU: Invalid value: "lots": must be a quantity`}},
		"bad xds":          {"injection:\n  profile: envoy\n  xdsAddress: istiod\n", []string{`injection.xdsAddress: Invalid value: "istiod": must be host:port`}},
		"envoy needs xds":  {"injection:\n  profile: envoy\n", []string{`injection.xdsAddress: Required value: the envoy profile needs`}},
		"xds under istio":  {"injection:\n  xdsAddress: x:1\n", []string{`injection.xdsAddress: Forbidden: only the envoy profile uses it`, "injection.istio.discoveryAddress"}},
		"tls under istio":  {"injection:\n  xdsTLS: {secretName: a}\n", []string{`injection.xdsTLS: Forbidden`}},
		"tls needs secret": {"injection:\n  profile: envoy\n  xdsAddress: x:1\n  xdsTLS: {clientCertificate: true}\n", []string{`injection.xdsTLS.secretName: Required value`}},
		"bad profile":      {"injection:\n  profile: linkerd\n", []string{`injection.profile: Unsupported value: "linkerd"`, `"istio"`, `"envoy"`}},
		"bad discovery":    {"injection:\n  istio: {discoveryAddress: istiod}\n", []string{`injection.istio.discoveryAddress: Invalid value: "istiod": must be host:port`}},
		"bad proxyConfig":  {"injection:\n  istio:\n    proxyConfig: {holdApplicationUntilProxyStart: true}\n", []string{`injection.istio.proxyConfig`, `unknown ProxyConfig field "holdApplicationUntilProxyStart"`}},
		"unknown pc field": {"injection:\n  istio:\n    proxyConfig: {holdApplicationUntilProxyStart: true}\n", []string{`injection.istio.proxyConfig.holdApplicationUntilProxyStart: Invalid value: unknown ProxyConfig field`, `did you mean "holdApplicationUntilProxyStarts"`}},
		"pc statusPort":    {"injection:\n  istio:\n    proxyConfig: {statusPort: 15099}\n", []string{`injection.istio.proxyConfig.statusPort: Forbidden`, "15020"}},
		"hold contradicts": {"injection:\n  holdApplicationUntilProxyStarts: true\n  istio:\n    proxyConfig: {holdApplicationUntilProxyStarts: false}\n", []string{`injection.holdApplicationUntilProxyStarts: Invalid value: true: contradicts`}},
		"pc metadata name": {"injection:\n  istio:\n    proxyConfig: {proxyMetadata: {\"A=B\": x}}\n", []string{`injection.istio.proxyConfig.proxyMetadata[A=B]: Invalid value: "A=B"`}},
		"tproxy on istio":  {"injection:\n  interceptionMode: TPROXY\n", []string{`injection.interceptionMode: Unsupported value: "TPROXY"`, `"REDIRECT"`}},
		"bad trust domain": {"injection:\n  istio: {trustDomain: \"a b\"}\n", []string{`injection.istio.trustDomain: Invalid value: "a b"`}},
		"bad selector":     {"injection:\n  neverInjectSelector:\n  - matchExpressions: [{key: a, operator: Sometimes}]\n", []string{`injection.neverInjectSelector[0]`}},
		"bad mode":         {"guard:\n  defaultMode: loud\n", []string{`guard.defaultMode: Unsupported value: "loud"`}},
		"bad cert mode":    {"certs:\n  mode: vault\n", []string{`certs.mode: Unsupported value: "vault"`}},
		"lease order":      {"leaderElection:\n  leaseDuration: 5s\n  renewDeadline: 10s\n", []string{"leaderElection.renewDeadline", "must be shorter than leaseDuration"}},
		"every problem":    {"guard:\n  defaultMode: xx\ncerts:\n  mode: vaulty\n", []string{"guard.defaultMode", "certs.mode"}},
		"wrong kind":       {"kind: Pod\n", []string{`kind: Unsupported value: "Pod"`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
