package inject

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshwarden/meshwarden/templates"
)

// FuzzRenderValues renders the default template with arbitrary strings in every string setting,
// bypassing annotation validation, to prove the template alone keeps values as data: rendering
// either fails with an error or yields exactly the proxy, the init container (unless interception
// is NONE) and the scratch volume, with each value where it belongs, verbatim, and the same
// securityContexts and commands as the default settings.
func FuzzRenderValues(f *testing.F) {
	for _, v := range append([]string{"", "registry.example/envoy:1", "NONE", "TPROXY", "debug", "istiod:15012", "10.0.0.0/8", "*"}, hostileValues...) {
		f.Add(v, v, v, v, v, v, v)
	}
	cfg := newInjector(f, envoyProfile).cfg
	set := templates.Default()
	base := settingsFor(cfg.Injection, Overrides{})
	want, err := render(set, []string{"sidecar"}, base.values(cfg.Injection), nil)
	if err != nil {
		f.Fatal(err)
	}
	baseline := securityOfRendered(f, want)
	f.Fuzz(func(t *testing.T, proxyImage, initImage, logLevel, interception, xds, cidrs, ports string) {
		for _, in := range []string{proxyImage, initImage, logLevel, interception, xds, cidrs, ports} {
			if !utf8.ValidString(in) {
				return // the API server only passes valid UTF-8; toJson turns the rest into U+FFFD
			}
		}
		s := base
		s.proxyImage, s.initImage, s.logLevel, s.interception, s.xdsAddress = proxyImage, initImage, logLevel, interception, xds
		s.inclOutCIDRs, s.exclInPorts = cidrs, ports
		v := s.values(cfg.Injection)
		r, err := render(set, []string{"sidecar"}, v, nil)
		if err != nil {
			return
		}
		wantInit := []string{InitName}
		if interception == "NONE" {
			wantInit = nil
		}
		var gotInit, gotContainers, gotVolumes []string
		var proxy, init corev1.Container
		for _, p := range r.initContainers {
			if p.name == ProxyName {
				mustDecode(t, p.raw, &proxy)
				continue
			}
			gotInit = append(gotInit, p.name)
			mustDecode(t, p.raw, &init)
		}
		for _, p := range r.containers {
			gotContainers = append(gotContainers, p.name)
			mustDecode(t, p.raw, &proxy)
		}
		for _, p := range r.volumes {
			gotVolumes = append(gotVolumes, p.name)
		}
		if !reflect.DeepEqual(gotInit, wantInit) || len(gotContainers) > 1 || proxy.Name != ProxyName ||
			!reflect.DeepEqual(gotVolumes, []string{"meshwarden-proxy-tmp"}) || len(r.labels) > 0 || len(r.annotations) > 0 {
			t.Fatalf("values changed the structure: init %v, containers %v, volumes %v, labels %v, annotations %v",
				gotInit, gotContainers, gotVolumes, r.labels, r.annotations)
		}
		if proxy.Image != proxyImage || !reflect.DeepEqual(proxy.Args, v.ProxyArgs) {
			t.Fatalf("proxy image %q args %q, want %q %q", proxy.Image, proxy.Args, proxyImage, v.ProxyArgs)
		}
		if wantInit != nil && (init.Image != initImage || !reflect.DeepEqual(init.Args, v.CaptureArgs)) {
			t.Fatalf("init image %q args %q, want %q %q", init.Image, init.Args, initImage, v.CaptureArgs)
		}
		got := securityOfRendered(t, r)
		for name, sec := range got {
			if diff := cmp.Diff(baseline[name], sec); diff != "" {
				t.Fatalf("values changed %s's security (-default +got):\n%s", name, diff)
			}
		}
	})
}

func mustDecode(t testing.TB, raw []byte, c *corev1.Container) {
	t.Helper()
	if err := json.Unmarshal(raw, c); err != nil {
		t.Fatalf("rendered container does not decode: %v", err)
	}
}

// securityOfRendered maps each rendered container to its securityContext, command and ports.
func securityOfRendered(t testing.TB, r *rendered) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, p := range append(append([]piece{}, r.initContainers...), r.containers...) {
		var c corev1.Container
		mustDecode(t, p.raw, &c)
		out[c.Name] = map[string]any{"securityContext": c.SecurityContext, "command": c.Command, "ports": c.Ports, "volumeMounts": c.VolumeMounts}
	}
	return out
}
