package certmanager

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshwarden/meshwarden/certs/internal/testapi"
	"github.com/meshwarden/meshwarden/config"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testapi.Stop()
	os.Exit(code)
}

// TestObjectsAcceptedByCRDs creates the objects in a real API server that serves cert-manager's own
// CRDs (from the cert-manager module go.mod pins), so their OpenAPI schema and CEL rules judge them.
func TestObjectsAcceptedByCRDs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		t.Fatalf("locating the cert-manager module for its CRDs: %v", err)
	}
	rc := testapi.Config(t, filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds"))
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := cmapi.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := &config.Config{Namespace: "mesh"}
	cfg.Certs.ExtraSANs = []string{"webhook.example.com", "10.0.0.7"}
	cfg.Default()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mesh"}}); err != nil {
		t.Fatal(err)
	}
	issuers, certs := Objects(FromConfig(cfg))
	for _, obj := range []client.Object{issuers[0], certs[0], issuers[1], certs[1]} {
		if err := c.Create(ctx, obj, client.DryRunAll); err != nil {
			t.Errorf("%s %s rejected: %v", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
		}
	}
}
