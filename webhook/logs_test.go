package webhook

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
)

// TestLogsCarryNoValues: pods carry secrets in env and annotations; logs name the request, never its
// content, whatever the outcome.
func TestLogsCarryNoValues(t *testing.T) {
	const secret = "s3cr3t-Value"
	var logs strings.Builder
	h := handler(t)
	h.Log = funcr.New(func(prefix, args string) { logs.WriteString(prefix + args + "\n") }, funcr.Options{Verbosity: 10})
	pods := []string{
		`{"metadata":{"annotations":{"sidecar.meshwarden.io/proxyCPU":"` + secret + `"}},"spec":{"containers":[{"name":"a","env":[{"name":"K","value":"` + secret + `"}]}]}}`,
		`{"metadata":{"annotations":{"note":"` + secret + `"}},"spec":{"containers":[{"name":"a","env":[{"name":"K","value":"` + secret + `"}]}]}}`,
	}
	for _, p := range pods {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(review(admissionv1.Create, "Pod", p))))
	}
	if logs.Len() == 0 {
		t.Fatal("nothing logged; the test would prove nothing")
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("a value reached the logs:\n%s", logs.String())
	}
}
