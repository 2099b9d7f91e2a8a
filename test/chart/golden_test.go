package chart

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current chart")

func goldenPath(name string) string { return filepath.Join("testdata", "golden", name+".yaml") }

// TestGolden renders each case and compares it with testdata/golden/<case>.yaml. A chart change
// that alters a render fails here until `go test ./test/chart -update` rewrites the goldens, so the
// rendered difference shows up in review.
func TestGolden(t *testing.T) {
	for _, name := range caseNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := render(t, goldenCases[name])
			if *update {
				if err := os.WriteFile(goldenPath(name), []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath(name))
			if err != nil {
				t.Fatalf("%v (create it with: go test ./test/chart -run TestGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s is stale (-golden +rendered); if the change is intended run "+
					"`go test ./test/chart -run TestGolden -update`:\n%s", goldenPath(name), diff)
			}
		})
	}
}

// TestGoldenNoOrphans fails on a golden file no case renders any more (a renamed or removed case).
func TestGoldenNoOrphans(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		if _, ok := goldenCases[name]; !ok {
			if *update {
				_ = os.Remove(filepath.Join("testdata", "golden", e.Name()))
				continue
			}
			t.Errorf("testdata/golden/%s belongs to no case; remove it or run with -update", e.Name())
		}
	}
}
