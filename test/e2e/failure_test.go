package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMalformedAdmissionReviewGets400(t *testing.T) {
	setup(t, nil)
	tests := map[string]string{
		"not json":       "this is not an AdmissionReview",
		"truncated json": `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":`,
		"empty body":     "",
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, mesh.URL("/inject"), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := mesh.HTTPClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status = %s, want 400 Bad Request; body: %s", resp.Status, b)
			}
		})
	}
}

// With meshwarden down, failurePolicy decides: Fail rejects pods in opted-in namespaces (and only
// there), Ignore admits them without a sidecar.
func TestWebhookDown(t *testing.T) {
	ctx, labelled := setup(t, enabled)
	plain := labelled + "-plain"
	if err := env.CreateNamespace(ctx, plain, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client().CoreV1().Namespaces().Delete(context.Background(), plain, metav1.DeleteOptions{})
	})
	mesh.Stop()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := mesh.Start(ctx); err != nil {
			t.Errorf("restart meshwarden: %v", err)
		}
		if err := env.RegisterWebhooks(ctx, mesh.WebhookOptions()); err != nil {
			t.Error(err)
		}
		if err := waitInjecting(ctx); err != nil {
			t.Error(err)
		}
	})
	pods := env.Client().CoreV1()

	_, err := pods.Pods(labelled).Create(ctx, newPod("fail").Pod, metav1.CreateOptions{})
	if err == nil {
		t.Fatal("pod admitted in an opted-in namespace while the webhook is down under failurePolicy Fail")
	}
	t.Logf("rejection: %v", err)
	for _, want := range []string{"failed calling webhook", `"inject.meshwarden.io"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("rejection lacks %q: %v", want, err)
		}
	}
	if _, err := pods.Pods(plain).Create(ctx, newPod("plain").Pod, metav1.CreateOptions{}); err != nil {
		t.Errorf("unlabelled namespace must not depend on the webhook: %v", err)
	}

	opts := mesh.WebhookOptions()
	opts.InjectFailurePolicy = admissionv1.Ignore
	if err := env.RegisterWebhooks(ctx, opts); err != nil {
		t.Fatal(err)
	}
	// The API server sees the new policy after its informer catches up.
	for {
		got, err := pods.Pods(labelled).Create(ctx, newPod("ignore").Pod, metav1.CreateOptions{})
		if err == nil {
			if injected(got) {
				t.Errorf("pod injected although meshwarden is down: %v", containerNames(got))
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("pod still rejected under failurePolicy Ignore: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
