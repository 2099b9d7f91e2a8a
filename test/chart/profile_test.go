package chart

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/version"
)

// renderedInjection is the injection section of the config file exactly as the chart writes it, before
// meshwarden's defaults fill in what the chart left out.
func renderedInjection(t *testing.T, objs []object) map[string]any {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, objs, releaseName+"-config")
	var file struct {
		Injection map[string]any `json:"injection"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &file); err != nil {
		t.Fatal(err)
	}
	return file.Injection
}

// checkAbsent fails for every key of the rendered injection section that must not be there.
func checkAbsent(t *testing.T, injection map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := injection[k]; ok {
			t.Errorf("injection.%s = %v rendered with the %v profile", k, v, injection["profile"])
		}
	}
}

// TestDefaultProfile: the default values ask for the istio profile and leave the envoy profile's
// settings and the template list out, so meshwarden's per-profile defaults apply; the chart's image
// defaults are meshwarden's own.
func TestDefaultProfile(t *testing.T) {
	objs := rendered(t, "default")
	in := renderedInjection(t, objs)
	if in["profile"] != string(config.ProfileIstio) {
		t.Errorf("injection.profile = %v, want istio", in["profile"])
	}
	checkAbsent(t, in, "xdsAddress", "xdsTLS", "proxyImage", "templates")
	cfg := loadConfig(t, objs).Injection
	if cfg.Profile != config.ProfileIstio || cfg.XDSAddress != "" || cfg.XDSTLS != nil {
		t.Errorf("profile %q, xdsAddress %q, xdsTLS %v; want istio and no xDS settings", cfg.Profile, cfg.XDSAddress, cfg.XDSTLS)
	}
	if want := []string{config.DefaultTemplate(config.ProfileIstio)}; !equalStrings(cfg.Templates, want) {
		t.Errorf("templates = %q, want the istio profile's %q", cfg.Templates, want)
	}
	if cfg.Istio.ProxyImage != config.DefaultIstioProxyImage {
		t.Errorf("injection.istio.proxyImage = %q, meshwarden's default is %q", cfg.Istio.ProxyImage, config.DefaultIstioProxyImage)
	}
	if cfg.InitImage != config.DefaultInitImage() {
		t.Errorf("injection.initImage = %q, meshwarden's default is %q", cfg.InitImage, config.DefaultInitImage())
	}
	if !*cfg.Istio.RewriteAppProbers || !*cfg.Istio.PrometheusMerge {
		t.Errorf("rewriteAppProbers %v, prometheusMerge %v; want both on by default", *cfg.Istio.RewriteAppProbers, *cfg.Istio.PrometheusMerge)
	}
}

// TestEnvoyProfile: the envoy profile with only its required xdsAddress set gets the chart's Envoy
// image (meshwarden's default), the sidecar template and no istio section.
func TestEnvoyProfile(t *testing.T) {
	objs := decodeAll(t, render(t, renderCase{set: []string{"injection.profile=envoy", "injection.xdsAddress=xds.my-mesh.svc:18000"}}))
	checkAbsent(t, renderedInjection(t, objs), "istio", "xdsTLS", "templates")
	cfg := loadConfig(t, objs).Injection
	if cfg.Profile != config.ProfileEnvoy || cfg.XDSAddress != "xds.my-mesh.svc:18000" {
		t.Errorf("profile %q, xdsAddress %q; want envoy and the address set", cfg.Profile, cfg.XDSAddress)
	}
	if want := []string{config.DefaultTemplate(config.ProfileEnvoy)}; !equalStrings(cfg.Templates, want) {
		t.Errorf("templates = %q, want the envoy profile's %q", cfg.Templates, want)
	}
	if cfg.ProxyImage != config.DefaultProxyImage {
		t.Errorf("injection.proxyImage = %q, meshwarden's default is %q", cfg.ProxyImage, config.DefaultProxyImage)
	}
}

// TestEnvoyProfileEverything: every envoy profile value of the everything case reaches the config.
func TestEnvoyProfileEverything(t *testing.T) {
	objs := rendered(t, "everything")
	checkAbsent(t, renderedInjection(t, objs), "istio")
	cfg := loadConfig(t, objs).Injection
	type envoySettings struct {
		XDSAddress, ProxyImage, InitImage string
		XDSTLS                            *config.XDSTLS
	}
	want := envoySettings{
		XDSAddress: "xds.my-mesh.svc:18000",
		ProxyImage: "envoyproxy/envoy:v1.36.2@sha256:" + strings.Repeat("1", 64),
		InitImage:  "ghcr.io/meshwarden/meshwarden-init:0.1.0@sha256:" + strings.Repeat("2", 64),
		XDSTLS:     &config.XDSTLS{SecretName: "xds-client-tls", ClientCertificate: true, ServerName: "xds.my-mesh.example"},
	}
	got := envoySettings{XDSAddress: cfg.XDSAddress, ProxyImage: cfg.ProxyImage, InitImage: cfg.InitImage, XDSTLS: cfg.XDSTLS}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("envoy settings (-want +got):\n%s", diff)
	}
}

// TestIstioProfileValues: every injection.istio value of the istio case reaches the config as given.
func TestIstioProfileValues(t *testing.T) {
	objs := rendered(t, "istio")
	checkAbsent(t, renderedInjection(t, objs), "xdsAddress", "xdsTLS", "proxyImage")
	cfg := loadConfig(t, objs).Injection
	no := false
	want := config.IstioProfile{
		ProxyImage:        "registry.example/istio/proxyv2:1.31.0@sha256:" + strings.Repeat("4", 64),
		SystemNamespace:   "istio-prod",
		DiscoveryAddress:  "istiod-canary.istio-prod.svc:15012",
		ClusterID:         "east",
		MeshID:            "mesh1",
		TrustDomain:       "example.org",
		Network:           "net-east",
		ClusterDomain:     "cluster.example",
		RewriteAppProbers: &no,
		PrometheusMerge:   &no,
	}
	if diff := cmp.Diff(want, cfg.Istio, cmpopts.IgnoreFields(config.IstioProfile{}, "ProxyConfig")); diff != "" {
		t.Errorf("injection.istio (-want +got):\n%s", diff)
	}
	if got := cfg.Istio.ProxyConfig; len(got) != 2 || got["terminationDrainDuration"] != "10s" {
		t.Errorf("injection.istio.proxyConfig = %v, want concurrency and terminationDrainDuration", got)
	}
	if want := "registry.example/meshwarden/meshwarden-init:" + version.Version; cfg.InitImage != want {
		t.Errorf("injection.initImage = %q, want %q (no tag: the chart's appVersion)", cfg.InitImage, want)
	}
}

// TestProfileRefusals: values that belong to the other profile, or that a profile lacks, fail the
// render with the chart's own message naming the value (not a schema error, not a crash-looping pod).
func TestProfileRefusals(t *testing.T) {
	envoy := []string{"injection.profile=envoy", "injection.xdsAddress=xds.my-mesh.svc:18000"}
	cases := map[string]struct {
		set  []string
		want string
	}{
		"envoy without xdsAddress":      {[]string{"injection.profile=envoy"}, "injection.xdsAddress is required with injection.profile=envoy"},
		"istio with xdsAddress":         {[]string{"injection.xdsAddress=xds.my-mesh.svc:18000"}, "injection.xdsAddress is for injection.profile=envoy only"},
		"explicit istio, xdsAddress":    {[]string{"injection.profile=istio", "injection.xdsAddress=istiod.istio-system.svc:15012"}, "injection.xdsAddress is for injection.profile=envoy only"},
		"istio with xdsTLS":             {[]string{"injection.xdsTLS.secretName=xds-tls"}, "injection.xdsTLS is for injection.profile=envoy only"},
		"envoy xdsTLS without a Secret": {append(envoy, "injection.xdsTLS.clientCertificate=true"), "injection.xdsTLS.secretName is required"},
		"envoy image without a tag":     {append(envoy, "injection.proxyImage.tag="), "injection.proxyImage: set a tag or a digest"},
		"istio image without a tag":     {[]string{"injection.istio.proxyImage.tag="}, "injection.istio.proxyImage: set a tag or a digest"},
		"test image without a tag":      {[]string{"tests.image.tag="}, "tests.image: set a tag or a digest"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runHelm(t, renderCase{set: c.set}.args(t)...)
			if err == nil {
				t.Fatalf("--set %s was accepted", strings.Join(c.set, ","))
			}
			if strings.Contains(stderr, schemaError) || !strings.Contains(stderr, c.want) {
				t.Errorf("want the chart's message %q, got:\n%s", c.want, stderr)
			}
		})
	}
}

// pinned reports whether an image reference names a fixed image: a digest, or a tag that is not latest.
func pinned(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	return ok && tag != "" && tag != "latest"
}

// TestImagesPinned: in every case every image the chart renders, and every image meshwarden will
// inject, is a digest or a fixed tag; meshwarden's own container is pulled IfNotPresent by default.
func TestImagesPinned(t *testing.T) {
	forEachCase(t, func(t *testing.T, name string, objs []object) {
		refs := map[string]string{}
		for _, c := range deployment(t, objs).Spec.Template.Spec.Containers {
			refs["Deployment container "+c.Name] = c.Image
		}
		for _, c := range find[*corev1.Pod](t, objs, releaseName+"-test-webhook").Spec.Containers {
			refs["helm test container "+c.Name] = c.Image
		}
		in := loadConfig(t, objs).Injection
		refs["injection.initImage"] = in.InitImage
		if in.Profile == config.ProfileEnvoy {
			refs["injection.proxyImage"] = in.ProxyImage
		} else {
			refs["injection.istio.proxyImage"] = in.Istio.ProxyImage
		}
		for what, ref := range refs {
			if !pinned(ref) {
				t.Errorf("%s: image %q is neither a digest nor a fixed tag", what, ref)
			}
		}
		if name == "default" {
			c := deployment(t, objs).Spec.Template.Spec.Containers[0]
			if want := "ghcr.io/meshwarden/meshwarden:" + version.Version; c.Image != want {
				t.Errorf("meshwarden image %q, want %q (no tag: the chart's appVersion)", c.Image, want)
			}
			if c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("imagePullPolicy %q, want IfNotPresent", c.ImagePullPolicy)
			}
		}
	})
}

// TestImageDigests: a digest renders as repository@digest, or repository:tag@digest when a tag is
// given too, for every image the chart exposes.
func TestImageDigests(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	objs := decodeAll(t, render(t, renderCase{set: []string{
		"image.tag=1.2.3", "image.digest=" + digest,
		"injection.initImage.digest=" + digest,
		"injection.istio.proxyImage.tag=", "injection.istio.proxyImage.digest=" + digest,
		"tests.image.digest=" + digest,
	}}))
	in := loadConfig(t, objs).Injection
	got := map[string]string{
		"image":                      deployment(t, objs).Spec.Template.Spec.Containers[0].Image,
		"injection.initImage":        in.InitImage,
		"injection.istio.proxyImage": in.Istio.ProxyImage,
		"tests.image":                find[*corev1.Pod](t, objs, releaseName+"-test-webhook").Spec.Containers[0].Image,
	}
	want := map[string]string{
		"image":                      "ghcr.io/meshwarden/meshwarden:1.2.3@" + digest,
		"injection.initImage":        "ghcr.io/meshwarden/meshwarden-init@" + digest, // no tag: the digest alone
		"injection.istio.proxyImage": "docker.io/istio/proxyv2@" + digest,
		"tests.image":                "curlimages/curl:8.11.1@" + digest,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	objs = decodeAll(t, render(t, renderCase{set: []string{
		"injection.profile=envoy", "injection.xdsAddress=xds.my-mesh.svc:18000", "injection.proxyImage.digest=" + digest,
	}}))
	if got, want := loadConfig(t, objs).Injection.ProxyImage, "envoyproxy/envoy:v1.36.2@"+digest; got != want {
		t.Errorf("injection.proxyImage = %q, want %q", got, want)
	}
}
