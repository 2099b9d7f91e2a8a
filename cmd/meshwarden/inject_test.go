package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/manifest"
	"github.com/meshwarden/meshwarden/templates"
	"github.com/meshwarden/meshwarden/webhook"
)

var update = flag.Bool("update", false, "rewrite golden files")

// runCLI runs a meshwarden subcommand in-process and returns exit code, stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errOut})
	return code, out.String(), errOut.String()
}

func golden(code int, out, errOut string) string {
	return fmt.Sprintf("# exit %d\n%s# stderr\n%s", code, out, errOut)
}

// goldenProfiles are the profiles every input is injected with: the istio profile (the default
// config) and the envoy profile (the config file in its folder). Goldens live in testdata/inject/<profile>/.
var goldenProfiles = []struct{ name, config string }{
	{"istio", ""},
	{"envoy", "testdata/inject/envoy/config.yaml"},
}

// TestInjectGolden runs every testdata/inject input through `meshwarden inject` with each profile,
// compares with the golden, injects the output again to prove idempotency, and checks that the
// webhook produces the same pods.
func TestInjectGolden(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/inject/*.yaml")
	if len(inputs) == 0 {
		t.Fatal("no inputs")
	}
	for _, prof := range goldenProfiles {
		dir := filepath.Join("testdata/inject", prof.name)
		goldens, _ := filepath.Glob(filepath.Join(dir, "*.golden"))
		for _, g := range goldens {
			if _, err := os.Stat(filepath.Join("testdata/inject", strings.TrimSuffix(filepath.Base(g), ".golden")+".yaml")); err != nil {
				t.Errorf("stale golden %s has no input; delete it", g)
			}
		}
		var cfgArgs []string
		if prof.config != "" {
			cfgArgs = []string{"--config", prof.config}
		}
		for _, in := range inputs {
			name := strings.TrimSuffix(filepath.Base(in), ".yaml")
			t.Run(prof.name+"/"+name, func(t *testing.T) {
				code, out, errOut := runCLI(t, "", append([]string{"inject", "-f", in}, cfgArgs...)...)
				got := golden(code, out, errOut)
				goldenPath := filepath.Join(dir, name+".golden")
				if *update {
					if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(goldenPath)
				if err != nil {
					t.Fatalf("missing golden (run go test ./cmd/meshwarden -update): %v", err)
				}
				if diff := cmp.Diff(string(want), got); diff != "" {
					t.Fatalf("output differs from %s (-want +got):\n%s", goldenPath, diff)
				}
				if code != 0 {
					return
				}
				t.Run("idempotent", func(t *testing.T) {
					code2, out2, _ := runCLI(t, out, append([]string{"inject", "-f", "-"}, cfgArgs...)...)
					if code2 != 0 {
						t.Fatalf("second pass exit %d", code2)
					}
					if diff := cmp.Diff(out, out2); diff != "" {
						t.Fatalf("second pass changed the output (-first +second):\n%s", diff)
					}
				})
				t.Run("webhook", func(t *testing.T) { webhookMatchesCLI(t, prof.config, in, out) })
			})
		}
	}
}

// webhookMatchesCLI sends each pod template of the input through the /inject handler, applies the
// patch as the API server would, and compares with the pod template the CLI printed.
func webhookMatchesCLI(t *testing.T, cfgPath, input, cliOut string) {
	h := testHandler(t, cfgPath)
	inDocs := podTemplates(t, readFile(t, input))
	outDocs := podTemplates(t, cliOut)
	if len(inDocs) != len(outDocs) {
		t.Fatalf("%d pod templates in, %d out", len(inDocs), len(outDocs))
	}
	for i, pod := range inDocs {
		patched := admit(t, h, pod)
		if diff := cmp.Diff(normalise(t, outDocs[i]), normalise(t, patched)); diff != "" {
			t.Errorf("pod template %d: webhook and CLI differ (-cli +webhook):\n%s", i, diff)
		}
	}
}

func testHandler(t testing.TB, cfgPath string) http.Handler {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(cfg, inject.StaticTemplates{Set: templates.Default()})
	if err != nil {
		t.Fatal(err)
	}
	return &webhook.InjectHandler{
		Injector: in,
		Namespaces: func(_ context.Context, name string) (inject.Namespace, error) {
			return inject.Namespace{Name: name, Labels: map[string]string{inject.NamespaceLabel: "enabled"}}, nil
		},
		Log:     logr.Discard(),
		Metrics: webhook.NewMetrics(nil),
	}
}

// admit posts a pod to the handler and returns the pod with the response's patch applied.
func admit(t *testing.T, h http.Handler, pod []byte) []byte {
	t.Helper()
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "test-uid", Operation: admissionv1.Create, Namespace: "default",
			Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		},
	}
	review.Request.Object.Raw = pod
	// The API server sends the namespace the pod is created in; the pod's own field, when set, says the same.
	var meta struct {
		Metadata struct{ Namespace string } `json:"metadata"`
	}
	if json.Unmarshal(pod, &meta) == nil && meta.Metadata.Namespace != "" {
		review.Request.Namespace = meta.Metadata.Namespace
	}
	body, _ := json.Marshal(review)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var resp admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Response.UID != "test-uid" || !resp.Response.Allowed {
		t.Fatalf("unexpected response %+v", resp.Response)
	}
	if len(resp.Response.Patch) == 0 {
		return pod
	}
	patched, err := applyRawPatch(pod, resp.Response.Patch)
	if err != nil {
		t.Fatalf("applying the webhook's patch: %v", err)
	}
	return patched
}

type jsonpatchOperation = jsonpatch.Operation

// podTemplates returns the pod templates of every workload in a YAML stream, in order.
func podTemplates(t *testing.T, stream string) [][]byte {
	t.Helper()
	docs, err := manifest.Read([]string{"-"}, strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var walk func(obj map[string]any)
	walk = func(obj map[string]any) {
		kind, _ := obj["kind"].(string)
		if items, ok := obj["items"].([]any); ok {
			for _, it := range items {
				walk(it.(map[string]any))
			}
			return
		}
		path := inject.PodTemplatePath(kind)
		if path == nil {
			return
		}
		cur := obj
		for _, k := range path {
			cur = cur[k].(map[string]any)
		}
		b, _ := json.Marshal(cur)
		out = append(out, b)
	}
	for _, d := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal(d.Raw, &obj); err != nil {
			t.Fatal(err)
		}
		walk(obj)
	}
	return out
}

func normalise(t *testing.T, b []byte) any {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func applyRawPatch(doc, patch []byte) ([]byte, error) {
	var ops []jsonpatchOperation
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, err
	}
	return inject.ApplyPatch(doc, ops)
}
