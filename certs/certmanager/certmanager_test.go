package certmanager

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshwarden/meshwarden/config"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestYAMLGolden(t *testing.T) {
	tests := map[string]func(*config.Config){
		"defaults": func(*config.Config) {},
		"extra-sans": func(c *config.Config) {
			c.Certs.ExtraSANs = []string{"webhook.example.com", "10.0.0.7"}
			c.Namespace = "mesh"
		},
	}
	for name, mut := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := &config.Config{Namespace: "meshwarden"}
			mut(cfg)
			cfg.Default()
			got, err := YAML(FromConfig(cfg))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s is stale (-want +got), run go test -update:\n%s", golden, diff)
			}
		})
	}
}

func TestAnnotations(t *testing.T) {
	cfg := &config.Config{Namespace: "mesh"}
	cfg.Default()
	want := map[string]string{"cert-manager.io/inject-ca-from": "mesh/meshwarden-webhook"}
	if diff := cmp.Diff(want, Annotations(FromConfig(cfg))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	_, certs := Objects(FromConfig(cfg))
	if got := certs[1].Spec.SecretName; got != cfg.Certs.SecretName {
		t.Errorf("serving Certificate writes Secret %q, want certs.secretName %q", got, cfg.Certs.SecretName)
	}
}
