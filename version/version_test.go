package version

import (
	"os"
	"testing"

	"sigs.k8s.io/yaml"
)

// The chart installs meshwarden-init with the chart's appVersion as its tag, and the binary defaults
// to its own Version: both must name the same release.
func TestChartAppVersionMatches(t *testing.T) {
	raw, err := os.ReadFile("../charts/meshwarden/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.AppVersion != Version {
		t.Fatalf("charts/meshwarden/Chart.yaml appVersion %q, version.Version %q: bump both together", chart.AppVersion, Version)
	}
}
