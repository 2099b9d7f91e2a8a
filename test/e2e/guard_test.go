package e2e

import (
	"context"
	"fmt"
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
