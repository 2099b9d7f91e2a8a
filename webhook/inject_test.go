package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/inject"
	"github.com/meshwarden/meshwarden/templates"
)

func handler(t testing.TB) *InjectHandler {
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	in, err := inject.New(cfg, inject.StaticTemplates{Set: templates.Default()})
	if err != nil {
		t.Fatal(err)
	}
	return &InjectHandler{
		Injector: in,
		Namespaces: func(_ context.Context, name string) (inject.Namespace, error) {
			return inject.Namespace{Name: name, Labels: map[string]string{inject.NamespaceLabel: "enabled"}}, nil
		},
		Log: logr.Discard(), Metrics: NewMetrics(nil),
	}
}

func review(op admissionv1.Operation, kind string, pod string) []byte {
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-1", Operation: op, Namespace: "shop",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
		},
	}
	r.Request.Object.Raw = []byte(pod)
	b, _ := json.Marshal(r)
	return b
}

const plainPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-"},"spec":{"containers":[{"name":"web","image":"nginx"}]}}`

func TestInjectHandler(t *testing.T) {
	cases := map[string]struct {
		method      string
		body        []byte
		wantCode    int
		wantAllowed bool
		wantPatch   bool
		wantMessage string
	}{
		"injects a pod":          {body: review(admissionv1.Create, "Pod", plainPod), wantCode: 200, wantAllowed: true, wantPatch: true},
		"update is left alone":   {body: review(admissionv1.Update, "Pod", plainPod), wantCode: 200, wantAllowed: true},
		"other kinds left alone": {body: review(admissionv1.Create, "ConfigMap", `{}`), wantCode: 200, wantAllowed: true},
		"invalid annotation denied": {
			body:     review(admissionv1.Create, "Pod", `{"metadata":{"annotations":{"sidecar.meshwarden.io/proxyCPU":"lots"}},"spec":{"containers":[{"name":"a"}]}}`),
			wantCode: 200, wantMessage: `metadata.annotations[sidecar.meshwarden.io/proxyCPU]: Invalid value: "lots": must be a positive quantity such as 100m, 0.5 or 128Mi`,
		},
		"malformed JSON":              {body: []byte(`{"apiVersion":`), wantCode: 400},
		"not a review":                {body: []byte(`{"apiVersion":"v1","kind":"Pod"}`), wantCode: 400},
		"v1beta1 review":              {body: []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), wantCode: 400},
		"no request":                  {body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), wantCode: 400},
		"pod that is not JSON object": {body: review(admissionv1.Create, "Pod", `[1,2]`), wantCode: 400},
		"GET":                         {method: http.MethodGet, wantCode: 405},
		"body over 7 MiB":             {body: bytes.Repeat([]byte(" "), MaxBodyBytes+1), wantCode: 413},
	}
	h := handler(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, "/inject", bytes.NewReader(tc.body)))
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantCode, rec.Body)
			}
			if tc.wantCode != 200 {
				if strings.TrimSpace(rec.Body.String()) == "" {
					t.Fatal("error without a reason")
				}
				return
			}
			var resp admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			r := resp.Response
			if resp.APIVersion != "admission.k8s.io/v1" || r.UID != "uid-1" {
				t.Fatalf("bad envelope %+v", resp)
			}
			if r.Allowed != tc.wantAllowed || (len(r.Patch) > 0) != tc.wantPatch {
				t.Fatalf("allowed=%v patch=%d bytes", r.Allowed, len(r.Patch))
			}
			if tc.wantMessage != "" && (r.Result == nil || r.Result.Message != tc.wantMessage || r.Result.Code != 422) {
				t.Fatalf("result %+v, want message %q", r.Result, tc.wantMessage)
			}
		})
	}
}

// FuzzInjectHandler: whatever the body, the answer is a 4xx with a reason, or a valid admission/v1
// review carrying the request's UID; never a panic or a 500.
func FuzzInjectHandler(f *testing.F) {
	f.Add(review(admissionv1.Create, "Pod", plainPod))
	f.Add(review(admissionv1.Create, "Pod", `{"metadata":{"annotations":{"traffic.meshwarden.io/excludeInboundPorts":"*"}},"spec":{"containers":[{"name":"a"}]}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{}}}`))
	h := handler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
		if rec.Code >= 500 {
			t.Fatalf("status %d for client input: %s", rec.Code, rec.Body)
		}
		if rec.Code != 200 {
			return
		}
		var in, out admissionv1.AdmissionReview
		_ = kjson.UnmarshalCaseSensitivePreserveInts(body, &in) // as the handler and the API server read it
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("200 without a valid review: %v", err)
		}
		if out.Response.UID != in.Request.UID {
			t.Fatalf("uid %q, want %q", out.Response.UID, in.Request.UID)
		}
	})
}

// TestRequireReview: a handler behind RequireReview answers bad bodies exactly as /inject does and
// sees good ones with their body intact.
func TestRequireReview(t *testing.T) {
	var seen []byte
	h := RequireReview(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = io.ReadAll(r.Body)
	}))
	for name, tc := range map[string]struct {
		method string
		body   []byte
		want   int
	}{
		"good":       {http.MethodPost, review(admissionv1.Create, "Pod", plainPod), 200},
		"not JSON":   {http.MethodPost, []byte("{"), 400},
		"empty":      {http.MethodPost, nil, 400},
		"no request": {http.MethodPost, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400},
		"GET":        {http.MethodGet, nil, 405},
		"over 7 MiB": {http.MethodPost, bytes.Repeat([]byte(" "), MaxBodyBytes+1), 413},
	} {
		t.Run(name, func(t *testing.T) {
			seen = nil
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/validate", bytes.NewReader(tc.body)))
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if tc.want == 200 && !bytes.Equal(seen, tc.body) {
				t.Fatal("the handler did not get the body intact")
			}
		})
	}
}
