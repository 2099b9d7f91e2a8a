package images

import (
	"os"
	"testing"

	"sigs.k8s.io/yaml"
)

// The chart's default images are the ones make images tags (its tags default to appVersion, which
// the version package's test holds to version.Version), so a chart installed on a node that imported
// the archives finds them without a registry.
func TestChartNamesTheImages(t *testing.T) {
	raw, err := os.ReadFile("../../charts/meshwarden/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type image struct{ Repository string }
	var values struct {
		Image     image
		Injection struct{ InitImage image }
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	for name, repo := range map[string]string{
		"meshwarden":      values.Image.Repository,
		"meshwarden-init": values.Injection.InitImage.Repository,
	} {
		if im, _ := Lookup(name); im.Repository != repo {
			t.Errorf("chart's %s repository %q, make images tags %q", name, repo, im.Repository)
		}
	}
}
