package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestInjectedGoldensAreValidPods: every pod or workload that `meshwarden inject` wrote into the
// goldens, under both profiles, is accepted by the real API server (server-side dry run, in a
// namespace meshwarden does not inject): what injection produces passes the API server's validation.
// Field validation is off: one input carries a field from the future on purpose (kept by the patch).
func TestInjectedGoldensAreValidPods(t *testing.T) {
	ctx, ns := setup(t, nil)
	files, _ := filepath.Glob(filepath.Join("..", "..", "cmd", "meshwarden", "testdata", "inject", "*", "*.golden"))
	if len(files) == 0 {
		t.Fatal("no goldens")
	}
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, _, _ := strings.Cut(string(data), "\n# stderr")
		out, ok := strings.CutPrefix(out, "# exit 0\n")
		if !ok || !strings.Contains(out, "sidecar.meshwarden.io/status") {
			continue // denied, or nothing injected
		}
		out = metadataNamespace.ReplaceAllString(out, "${1}namespace: "+ns) // objects the goldens place in a namespace of their own
		name := filepath.Join(filepath.Base(filepath.Dir(f)), filepath.Base(f))
		stdout, stderr, err := env.KubectlInput(ctx, out, "-n", ns, "create", "--dry-run=server", "--validate=false", "-o", "name", "-f", "-")
		if err != nil {
			t.Errorf("%s: the API server refuses the injected output: %v\n%s%s", name, err, stdout, stderr)
		}
		checked++
	}
	if checked < 20 {
		t.Fatalf("only %d goldens checked", checked)
	}
}

var metadataNamespace = regexp.MustCompile(`(?m)^(\s+)namespace: \S+$`)
