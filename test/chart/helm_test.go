package chart

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"github.com/meshwarden/meshwarden/test/cluster"
)

// Fixed inputs of every render, so that the goldens do not depend on the machine.
const (
	releaseName = "meshwarden"
	releaseNS   = "meshwarden"
	// kubeVersion is the cluster version helm template assumes (test/tools builds this release).
	kubeVersion = "1.37.0"
)

// repoRoot is the checkout's root; tests run in test/chart.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "meshwarden") }

// helmBinary returns helm from bin/ ($MESHWARDEN_BIN when set, like test/cluster), skipping the test
// when it is not built (failing under CI).
func helmBinary(t testing.TB) string {
	t.Helper()
	bin, err := cluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(bin, "helm")
	if _, err := os.Stat(p); err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatalf("bin/helm is missing (CI=%s): `make test` builds it with `make tools`", ci)
		}
		t.Skipf("bin/helm is not built; run `make tools` (or `make helm`) to run the chart tests")
	}
	return p
}

// runHelm runs bin/helm with a private, empty helm home so no user repositories or plugins leak in.
func runHelm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBinary(t), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// renderCase is one set of values the chart is rendered with.
type renderCase struct {
	// values are files under testdata/values.
	values []string
	// set are --set arguments.
	set []string
}

func (c renderCase) args(t testing.TB) []string {
	args := []string{"template", releaseName, chartDir(t), "--namespace", releaseNS, "--kube-version", kubeVersion}
	for _, v := range c.values {
		args = append(args, "--values", filepath.Join("testdata", "values", v))
	}
	for _, s := range c.set {
		args = append(args, "--set", s)
	}
	return args
}

// render runs helm template for the case and fails the test on any error.
func render(t testing.TB, c renderCase) string {
	t.Helper()
	out, stderr, err := runHelm(t, c.args(t)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	return out
}

// goldenCases are the renders kept as golden files in testdata/golden/<name>.yaml.
var goldenCases = map[string]renderCase{
	"default":          {},
	"ha-off":           {values: []string{"ha-off.yaml"}},
	"cert-manager":     {values: []string{"cert-manager.yaml"}},
	"custom-templates": {values: []string{"custom-templates.yaml"}},
	"everything":       {values: []string{"everything.yaml"}},
	"istio":            {values: []string{"istio.yaml"}},
}

func caseNames() []string {
	names := make([]string, 0, len(goldenCases))
	for n := range goldenCases {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// scheme knows every kind the chart may render: Kubernetes' own, cert-manager's and
// prometheus-operator's ServiceMonitor.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmapi.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictDecoder refuses unknown and duplicate fields.
var strictDecoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// object is one rendered manifest, decoded.
type object struct {
	gvk  schema.GroupVersionKind
	name string
	obj  runtime.Object
	raw  []byte
}

// decodeAll splits a multi-document render and decodes every document strictly into its Go type.
func decodeAll(t testing.TB, manifests string) []object {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufioReader(manifests))
	var objs []object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("splitting documents: %v", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("decoding strictly:\n%s\nerror: %v", doc, err)
			continue
		}
		acc, ok := obj.(interface{ GetName() string })
		if !ok {
			t.Fatalf("%s has no name", gvk)
		}
		objs = append(objs, object{gvk: *gvk, name: acc.GetName(), obj: obj, raw: doc})
	}
	return objs
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

// find returns the only rendered object of type T named name ("" for any name).
func find[T runtime.Object](t testing.TB, objs []object, name string) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok && (name == "" || o.name == name) {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T named %q, found %d", zero, name, len(found))
	}
	return found[0]
}

// all returns every rendered object of type T.
func all[T runtime.Object](objs []object) []T {
	var found []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			found = append(found, v)
		}
	}
	return found
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func describe(o object) string { return fmt.Sprintf("%s %s", o.gvk.Kind, o.name) }
