package guard_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/guard"
	"github.com/meshwarden/meshwarden/guard/load"
)

var corpusDir = filepath.Join("..", "..", "shared", "corpus", "analyze")

// istioCode maps each meshwarden code to the Istio analyzer message it corresponds to.
var istioCode = map[guard.Code]string{
	guard.CodeGatewayNotFound:             "IST0101",
	guard.CodeInternalGatewayRef:          "IST0165",
	guard.CodeHostNotInGateway:            "IST0132",
	guard.CodeRouteHostNotFound:           "IST0101",
	guard.CodeRoutePortNotFound:           "IST0101",
	guard.CodeRoutePortRequired:           "IST0112",
	guard.CodeSubsetNotFound:              "IST0101",
	guard.CodeDestinationRuleHostNotFound: "IST0174",
	guard.CodeSubsetSelectsNoPods:         "IST0173",
	guard.CodeGatewaySelectsNoPods:        "IST0101",
	guard.CodeGatewayPortNotExposed:       "IST0162",
}

// analyzerCodes are the meshwarden codes that do the job of each Istio analyzer; Istio runs one analyzer
// per case, so only these codes are compared.
var analyzerCodes = map[string][]guard.Code{
	"virtualservice.GatewayAnalyzer":         {guard.CodeGatewayNotFound, guard.CodeInternalGatewayRef, guard.CodeHostNotInGateway},
	"virtualservice.DestinationHostAnalyzer": {guard.CodeRouteHostNotFound, guard.CodeRoutePortNotFound, guard.CodeRoutePortRequired},
	"virtualservice.DestinationRuleAnalyzer": {guard.CodeSubsetNotFound},
	"destinationrule.PodNotSelectedAnalyzer": {guard.CodeDestinationRuleHostNotFound, guard.CodeSubsetSelectsNoPods},
	"gateway.IngressGatewayPortAnalyzer":     {guard.CodeGatewaySelectsNoPods, guard.CodeGatewayPortNotExposed},
}

// differences are the deliberate departures from Istio's analyzers, each with its reason. missing are
// Istio findings meshwarden does not give; extra are meshwarden findings Istio does not give.
var differences = map[string]struct {
	missing, extra []string
	reason         string
}{
	"virtualServiceGateways": {
		missing: []string{"IST0132 VirtualService httpbin-bogus"},
		reason:  "the Gateway does not exist, so MW0101 already says what is wrong; checking its hosts would repeat it",
	},
	"Route Rule no effect on Ingress": {
		missing: []string{"IST0140 VirtualService default/testing-service-01-test-01"},
		reason:  "IST0140 (subset rules ignored for ingress traffic) is advice about intent, not a broken reference; not one of the seven checks",
	},
	"virtualServiceConflictingMeshGatewayHosts": {
		missing: []string{
			"IST0109 VirtualService bar/ratings", "IST0109 VirtualService foo/bogus-productpage", "IST0109 VirtualService foo/productpage",
			"IST0109 VirtualService foo/ratings", "IST0109 VirtualService team2/ratings", "IST0109 VirtualService team3/ratings", "IST0109 VirtualService team4/ratings",
		},
		reason: "conflicting VirtualService hosts (IST0109) is not a reference check; out of scope for the guard",
	},
	"virtualServiceConflictingMeshGatewayHostsWithExportTo": {
		missing: []string{
			"IST0109 VirtualService bar/productpage", "IST0109 VirtualService bar/productpage-c", "IST0109 VirtualService bar/productpage-d",
			"IST0109 VirtualService foo/productpage", "IST0109 VirtualService foo/productpage-c", "IST0109 VirtualService foo/productpage-d",
		},
		reason: "conflicting VirtualService hosts (IST0109) is not a reference check; out of scope for the guard",
	},
}

type expectedFile struct {
	Harness struct {
		ImplicitResources struct {
			YAML string `json:"yaml"`
		} `json:"implicit_resources"`
	} `json:"harness"`
	Cases []struct {
		Name                  string   `json:"name"`
		Analyzer              string   `json:"analyzer"`
		InputFiles            []string `json:"input_files"`
		UsesImplicitResources bool     `json:"uses_implicit_resources"`
		Expected              []struct {
			Code     string `json:"code"`
			Resource string `json:"resource"`
		} `json:"expected"`
	} `json:"cases"`
}

func TestIstioAnalyzerCorpus(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpusDir, "EXPECTED.yaml"))
	if err != nil {
		t.Skipf("corpus not present at %s: %v", corpusDir, err)
	}
	var exp expectedFile
	if err := yaml.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range exp.Cases {
		t.Run(c.Name, func(t *testing.T) {
			seen[c.Name] = true
			// The harness keeps objects without metadata.namespace in the empty namespace.
			l := load.New("")
			for _, f := range c.InputFiles {
				if err := l.AddPath(filepath.Join(corpusDir, f)); err != nil {
					t.Fatal(err)
				}
			}
			if c.UsesImplicitResources {
				if err := l.AddReader("implicit_resources", strings.NewReader(exp.Harness.ImplicitResources.YAML)); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, f := range guard.Filter(guard.Check(l.Snapshot(), guard.DefaultOptions()), analyzerCodes[c.Analyzer]...) {
				got = append(got, istioCode[f.Code]+" "+f.Resource.String())
			}
			d := differences[c.Name]
			got = append(got, d.missing...)
			var want []string
			for _, e := range c.Expected {
				want = append(want, e.Code+" "+e.Resource)
			}
			want = append(want, d.extra...)
			slices.Sort(got)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("findings as (Istio code, resource), after the listed differences (-want +got):\n%s", diff)
			}
		})
	}
	for name := range differences {
		if !seen[name] {
			t.Errorf("difference listed for %q, which is not a corpus case", name)
		}
	}
}
