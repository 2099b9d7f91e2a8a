package images

import "path/filepath"

// IstioTestProxy is the istio profile's proxy for a real node of this project's tests and `make run
// NODE=real`, a TEST IMAGE: Istio's pilot-agent (built by make istio-tools into binDir) and Envoy's
// bootstrap template where Istio's proxyv2 image has them, with test/standin/envoy at Envoy's path,
// because Envoy itself cannot be built or pulled here.
func IstioTestProxy(binDir string) Image {
	return Image{
		Name: "meshwarden-test-istio-proxy", Package: module + "/test/standin/envoy",
		Repository: TestRegistry + "/meshwarden-test-istio-proxy", Tag: "dev", User: "1337:1337", Test: true,
		Command: "/usr/local/bin/pilot-agent",
		// The root filesystem is read-only; the agent's istio-envoy volume is writable.
		Env: []string{"MESHWARDEN_STANDIN_REPORT=/etc/istio/proxy/envoy-standin-report.json"},
		Files: []File{
			{Path: "/usr/local/bin/pilot-agent", Source: filepath.Join(binDir, "pilot-agent"), Mode: 0o755},
			{Path: "/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", Source: filepath.Join(binDir, "istio", "envoy_bootstrap_tmpl.json"), Mode: 0o644},
		},
	}
}

// NodeImages are the images a real node of the tests imports: meshwarden-init, the sandbox, the test
// app and the istio test proxy.
func NodeImages(binDir string) []Image {
	var out []Image
	for _, name := range []string{"meshwarden-init", "pause", "meshwarden-test-app"} {
		im, _ := Lookup(name)
		out = append(out, im)
	}
	return append(out, IstioTestProxy(binDir))
}
