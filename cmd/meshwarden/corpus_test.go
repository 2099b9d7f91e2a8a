package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// istioToMeshwarden maps the Istio annotations that have a meshwarden twin of the same meaning, so
// that Istio's own injector inputs exercise meshwarden's validation. Istio keys without a twin are
// left alone, and meshwarden ignores them as it ignores any foreign annotation.
var istioToMeshwarden = strings.NewReplacer(
	"traffic.sidecar.istio.io/includeOutboundIPRanges", "traffic.meshwarden.io/includeOutboundIPRanges",
	"traffic.sidecar.istio.io/excludeOutboundIPRanges", "traffic.meshwarden.io/excludeOutboundIPRanges",
	"traffic.sidecar.istio.io/includeInboundPorts", "traffic.meshwarden.io/includeInboundPorts",
	"traffic.sidecar.istio.io/excludeInboundPorts", "traffic.meshwarden.io/excludeInboundPorts",
	"traffic.sidecar.istio.io/includeOutboundPorts", "traffic.meshwarden.io/includeOutboundPorts",
	"traffic.sidecar.istio.io/excludeOutboundPorts", "traffic.meshwarden.io/excludeOutboundPorts",
	"sidecar.istio.io/proxyCPULimit", "sidecar.meshwarden.io/proxyCPULimit",
	"sidecar.istio.io/proxyMemoryLimit", "sidecar.meshwarden.io/proxyMemoryLimit",
	"sidecar.istio.io/proxyCPU", "sidecar.meshwarden.io/proxyCPU",
	"sidecar.istio.io/proxyMemory", "sidecar.meshwarden.io/proxyMemory",
	"sidecar.istio.io/proxyImage", "sidecar.meshwarden.io/proxyImage",
	"sidecar.istio.io/interceptionMode", "sidecar.meshwarden.io/interceptionMode",
	"sidecar.istio.io/nativeSidecar", "sidecar.meshwarden.io/nativeSidecar",
	"sidecar.istio.io/inject", "sidecar.meshwarden.io/inject",
)

// TestIstioInjectCorpus runs every input of Istio's own injector tests through `meshwarden inject`:
// each workload comes back injected, skipped with a reason, or denied with a message naming the
// annotation; nothing panics; and a second pass over the output changes nothing.
func TestIstioInjectCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "corpus", "inject-inputs")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s (it lives beside the project in ../shared)", dir)
	}
	// Istio refuses these five; meshwarden must refuse them too, naming the same annotation. Others
	// meshwarden refuses (an Istio annotation its rendering cannot follow) must name the annotation.
	wantDenied := map[string]string{
		"traffic-annotations-bad-excludeinboundports.yaml":  "traffic.meshwarden.io/excludeInboundPorts",
		"traffic-annotations-bad-excludeipranges.yaml":      "traffic.meshwarden.io/excludeOutboundIPRanges",
		"traffic-annotations-bad-excludeoutboundports.yaml": "traffic.meshwarden.io/excludeOutboundPorts",
		"traffic-annotations-bad-includeinboundports.yaml":  "traffic.meshwarden.io/includeInboundPorts",
		"traffic-annotations-bad-includeipranges.yaml":      "traffic.meshwarden.io/includeOutboundIPRanges",
	}
	denial := regexp.MustCompile(`denied: \S*annotations\[([a-z.]+(?:meshwarden|istio)\.io/[A-Za-z]+)\]`)
	counts := map[string]int{}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "INDEX.yaml" {
			continue
		}
		t.Run(base, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input := istioToMeshwarden.Replace(string(data))
			code, out, errOut := runCLI(t, input, "inject", "-f", "-")
			switch code {
			case 0:
				injected := strings.Contains(out, "sidecar.meshwarden.io/status")
				skipped := strings.Contains(errOut, "not injected:")
				if !injected && !skipped && strings.Contains(input, "containers:") {
					t.Fatalf("workload neither injected nor skipped with a reason:\n%s", errOut)
				}
				if injected {
					counts["injected"]++
				}
				if skipped {
					counts["skipped"]++
				}
				code2, out2, _ := runCLI(t, out, "inject", "-f", "-")
				if code2 != 0 || out2 != out {
					t.Fatalf("second pass changed the output (exit %d)", code2)
				}
			case 1:
				counts["denied"]++
				m := denial.FindAllStringSubmatch(errOut, -1)
				if len(m) == 0 {
					t.Fatalf("denied without naming an annotation:\n%s", errOut)
				}
				if want := wantDenied[base]; want != "" && m[0][1] != want {
					t.Fatalf("denial names %s, want %s:\n%s", m[0][1], want, errOut)
				}
			default:
				t.Fatalf("exit %d:\n%s", code, errOut)
			}
			if want := wantDenied[base]; want != "" && code != 1 {
				t.Fatalf("Istio refuses this input; meshwarden admitted it")
			}
		})
	}
	t.Logf("corpus: %v", counts)
}
