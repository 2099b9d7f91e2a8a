package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const guardLabel = "meshwarden.io/config-guard"

func storeYAML(ns, gatewayRef string) string { return gatewayAndRoute(ns, "store-gateway", gatewayRef) }

// gatewayAndRoute is a Gateway and a VirtualService naming gatewayRef, applied in one go.
func gatewayAndRoute(ns, gateway, gatewayRef string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sample-app, namespace: %[1]s}
spec:
  hosts: ["*"]
  gateways: [%[2]s]
`, ns, gatewayRef, gateway)
}

func TestGuardWarnModeShowsKubectlWarning(t *testing.T) {
	ctx, ns := setup(t, nil) // no label: the default mode, warn
	_, stderr, err := env.KubectlInput(ctx, storeYAML(ns, "store-gatewy"), "apply", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply in warn mode failed: %v\n%s", err, stderr)
	}
	want := `Warning: [MW0101] spec.gateways[0]: Gateway "store-gatewy" not found; did you mean "store-gateway"?`
	if !strings.Contains(stderr, want) {
		t.Errorf("kubectl stderr lacks %q:\n%s", want, stderr)
	}
}

func TestGuardDenyModeShowsDenial(t *testing.T) {
	ctx, ns := setup(t, map[string]string{guardLabel: "deny"})
	_, stderr, err := env.KubectlInput(ctx, storeYAML(ns, "store-gatewy"), "apply", "-f", "-")
	if err == nil {
		t.Fatal("kubectl apply of a VirtualService naming a missing Gateway succeeded in deny mode")
	}
	for _, want := range []string{"denied the request", "[MW0101] spec.gateways[0]", `did you mean "store-gateway"?`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("kubectl stderr lacks %q:\n%s", want, stderr)
		}
	}
	// A new Gateway and its VirtualService in one apply: the Gateway is created first, and a cache
	// that has not seen it yet must not cause a denial (the miss is confirmed with an uncached read).
	if _, stderr, err := env.KubectlInput(ctx, gatewayAndRoute(ns, "fresh-gateway", "fresh-gateway"), "apply", "-f", "-"); err != nil {
		t.Errorf("kubectl apply of a correct Gateway and VirtualService failed: %v\n%s", err, stderr)
	}
}

func TestGuardEventsOnServiceDeleteAndRecreate(t *testing.T) {
	ctx, ns := setup(t, nil)
	svc := fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: %s}
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
`, ns)
	dr := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: %s}
spec: {host: reviews}
`, ns)
	if _, stderr, err := env.KubectlInput(ctx, svc+"---\n"+dr, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	time.Sleep(2 * time.Second) // let the reconciler see the healthy pair first
	_, stderr, err := env.Kubectl(ctx, "delete", "service", "reviews", "-n", ns)
	if err != nil {
		t.Fatalf("delete: %v\n%s", err, stderr)
	}
	if want := "Warning: Service reviews is still referenced by DestinationRule reviews"; !strings.Contains(stderr, want) {
		t.Errorf("kubectl delete stderr lacks %q:\n%s", want, stderr)
	}
	waitEvent(ctx, t, ns, "reviews", "BrokenReference")
	if _, stderr, err := env.KubectlInput(ctx, svc, "apply", "-f", "-"); err != nil {
		t.Fatalf("re-create: %v\n%s", err, stderr)
	}
	waitEvent(ctx, t, ns, "reviews", "ReferencesResolved")
}

// waitEvent waits up to 15s for an Event with reason about the DestinationRule name.
func waitEvent(ctx context.Context, t *testing.T, ns, name, reason string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs, err := env.Client().EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Reason == reason && e.Regarding.Kind == "DestinationRule" && e.Regarding.Name == name {
				t.Logf("%s %s: %s", e.Type, e.Reason, e.Note)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s Event on DestinationRule %s/%s within 15s (meshwarden log: %s)", reason, ns, name, mesh.LogFile())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestGuardCheckLiveCluster runs `meshwarden check` against the cluster, then with a file on top that
// fixes the reference.
func TestGuardCheckLiveCluster(t *testing.T) {
	ctx, ns := setup(t, nil)
	if _, stderr, err := env.KubectlInput(ctx, storeYAML(ns, "store-gatewy"), "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	run := func(args ...string) (int, []guardFinding) {
		t.Helper()
		cmd := exec.CommandContext(ctx, filepath.Join(env.BinDir(), "meshwarden"), append([]string{"check", "--kubeconfig=" + env.Kubeconfig(), "-o", "json"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var all, mine []guardFinding
		if err := json.Unmarshal(out, &all); err != nil {
			t.Fatalf("check output is not JSON: %v\n%s\nstderr: %s", err, out, stderr.String())
		}
		for _, f := range all {
			if f.Resource.Namespace == ns && f.Code != "MW0601" { // no ingress pods in this cluster
				mine = append(mine, f)
			}
		}
		return code, mine
	}
	code, got := run()
	if code != 1 || len(got) != 1 || got[0].Code != "MW0101" || got[0].Resource.Name != "sample-app" {
		t.Errorf("live check: exit %d, findings %+v; want exit 1 and MW0101 on VirtualService sample-app", code, got)
	}
	fix := filepath.Join(t.TempDir(), "fix.yaml")
	if err := os.WriteFile(fix, []byte(storeYAML(ns, "store-gateway")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, got := run("-f", fix, "-cluster"); len(got) != 0 {
		t.Errorf("check with the fix on top of the cluster: findings %+v, want none in %s", got, ns)
	}
}

type guardFinding struct {
	Code     string
	Resource struct{ Kind, Namespace, Name string }
}

// TestGuardDeniesWorkloadWithInvalidAnnotation: where its pods would be injected and the guard
// denies, the Deployment is refused at apply time with the message its pods would get, rather than
// failing later in a ReplicaSet's events; where the guard warns, kubectl prints a warning and applies
// it; where its pods would not be injected, the annotation does not matter and nothing is said.
func TestGuardDeniesWorkloadWithInvalidAnnotation(t *testing.T) {
	bad := func(ns string) string {
		return strings.Replace(deploymentYAML(ns, "bad"), "    metadata: {labels: {app: bad}}",
			"    metadata: {labels: {app: bad}, annotations: {sidecar.meshwarden.io/proxyCPU: lots}}", 1)
	}
	t.Run("deny", func(t *testing.T) {
		ctx, ns := setup(t, map[string]string{injectLabel: "enabled", guardLabel: "deny"})
		_, stderr, err := env.KubectlInput(ctx, bad(ns), "apply", "-f", "-")
		if err == nil {
			t.Fatal("kubectl apply of a Deployment whose pod template has proxyCPU=lots succeeded, want a denial")
		}
		for _, want := range []string{"denied the request", "spec.template.metadata.annotations[sidecar.meshwarden.io/proxyCPU]", `"lots"`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("kubectl stderr lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("warn", func(t *testing.T) {
		ctx, ns := setup(t, map[string]string{injectLabel: "enabled", guardLabel: "warn"})
		_, stderr, err := env.KubectlInput(ctx, bad(ns), "apply", "-f", "-")
		if err != nil {
			t.Fatalf("kubectl apply in warn mode: %v\n%s", err, stderr)
		}
		if want := `Warning: pod template annotation sidecar.meshwarden.io/proxyCPU="lots"`; !strings.Contains(stderr, want) {
			t.Errorf("kubectl stderr lacks %q:\n%s", want, stderr)
		}
	})
	t.Run("not injected", func(t *testing.T) {
		ctx, ns := setup(t, map[string]string{guardLabel: "deny"})
		_, stderr, err := env.KubectlInput(ctx, bad(ns), "apply", "-f", "-")
		if err != nil || strings.Contains(stderr, "proxyCPU") {
			t.Fatalf("kubectl apply where pods are not injected: %v\n%s", err, stderr)
		}
	})
}
