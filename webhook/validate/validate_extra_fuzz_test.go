package validate

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/guard"
)

// validateReview wraps obj (and old) in an AdmissionReview as the API server sends it.
func validateReview(op admissionv1.Operation, group, version, kind, ns, name string, obj, old []byte) []byte {
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-fuzz", Kind: metav1.GroupVersionKind{Group: group, Version: version, Kind: kind},
			Namespace: ns, Name: name, Operation: op,
			Object: runtime.RawExtension{Raw: obj}, OldObject: runtime.RawExtension{Raw: old},
		},
	}
	b, _ := json.Marshal(r)
	return b
}

// FuzzValidateHandler sends whole AdmissionReview bodies to /validate as `meshwarden serve`
// registers it (controller-runtime's admission.Webhook around Handler), with a cluster whose reads
// never fail. Whatever the body: no panic, never a 5xx HTTP status, and a 200 carries a valid
// admission/v1 review with the request's UID whose result is never a 500 (a 500 would mean a
// client's input was taken for an internal fault).
func FuzzValidateHandler(f *testing.F) {
	gw := []byte(`{"apiVersion":"networking.istio.io/v1","kind":"Gateway","metadata":{"name":"g","namespace":"strict"},"spec":{"selector":{"istio":"ingress"},"servers":[{"port":{"number":80,"name":"http","protocol":"HTTP"},"hosts":["./*","*/a.example.com"]}]}}`)
	dr := []byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"d"},"spec":{"host":"reviews","subsets":[{"name":"v1","labels":{"v":"1"}}],"exportTo":["."]}}`)
	deploy := []byte(`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"metadata":{"annotations":{"sidecar.meshwarden.io/proxyCPU":"lots"}}}}}`)
	cron := []byte(`{"apiVersion":"batch/v1","kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"metadata":{"annotations":{"traffic.meshwarden.io/excludeInboundPorts":"x"}}}}}}}`)
	for _, v := range []string{"v1", "v1beta1", "v1alpha3"} {
		f.Add(validateReview(admissionv1.Create, "networking.istio.io", v, "VirtualService", "strict", "app", vsJSON(v, "strict", "store/store-gatewy"), nil))
		f.Add(validateReview(admissionv1.Update, "networking.istio.io", v, "VirtualService", "warned", "app", vsJSON(v, "warned", "nope"), vsJSON(v, "warned", "mesh")))
	}
	f.Add(validateReview(admissionv1.Create, "networking.istio.io", "v1", "Gateway", "strict", "g", gw, nil))
	f.Add(validateReview(admissionv1.Create, "networking.istio.io", "v1", "DestinationRule", "warned", "d", dr, nil))
	f.Add(validateReview(admissionv1.Delete, "networking.istio.io", "v1", "Gateway", "store", "store-gateway", nil, nil))
	f.Add(validateReview(admissionv1.Delete, "", "v1", "Service", "warned", "reviews", nil, nil))
	f.Add(validateReview(admissionv1.Create, "apps", "v1", "Deployment", "warned", "d", deploy, nil))
	f.Add(validateReview(admissionv1.Update, "batch", "v1", "CronJob", "strict", "c", cron, cron))
	f.Add(validateReview(admissionv1.Create, "networking.istio.io", "v1", "ServiceEntry", "quiet", "se", []byte(`{"spec":{"hosts":["a"]}}`), nil))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"networking.istio.io","kind":"VirtualService"},"operation":"CREATE","object":null}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"apps","kind":"Deployment"},"operation":"CREATE","object":"x"}}`))
	f.Add([]byte(`not json`))

	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		f.Fatal(err)
	}
	if err := networking.AddToScheme(s); err != nil {
		f.Fatal(err)
	}
	base := []client.Object{
		namespace("warned", ""), namespace("strict", "deny"), namespace("quiet", "off"),
		gateway("store", "store-gateway"), service("warned", "reviews"), destinationRule("warned", "reviews", "reviews"),
		vsObject("web", "a", "store/store-gateway"),
	}
	cache := fake.NewClientBuilder().WithScheme(s).WithObjects(base...).Build()
	api := fake.NewClientBuilder().WithScheme(s).WithObjects(base...).Build()
	wh := &admission.Webhook{Handler: &Handler{Cache: cache, API: api, Options: guard.DefaultOptions(), DefaultMode: config.GuardWarn, Log: logr.Discard()}}

	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		wh.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d for client input: %s", rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		var in, out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("200 without a valid review (%v): %s", err, rec.Body)
		}
		if json.Unmarshal(body, &in) != nil || in.Request == nil || in.APIVersion != "admission.k8s.io/v1" || in.Kind != "AdmissionReview" {
			// Not an admission/v1 review with a request, which the API server never sends:
			// controller-runtime answers 200 and echoes whatever apiVersion/kind came in (none for
			// non-JSON, with result code 400; an empty body runs the handler on an empty request),
			// where /inject answers HTTP 400. Only the status class is checked here.
			return
		}
		if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
			t.Fatalf("review envelope %s/%s for %q: %s", out.APIVersion, out.Kind, body, rec.Body)
		}
		if out.Response.UID != in.Request.UID {
			t.Fatalf("uid %q, want %q", out.Response.UID, in.Request.UID)
		}
		if r := out.Response.Result; r != nil && r.Code >= 500 {
			t.Fatalf("result code %d for client input: %s", r.Code, r.Message)
		}
		if !out.Response.Allowed && (out.Response.Result == nil || out.Response.Result.Message == "") {
			t.Fatal("denial without a message")
		}
		for _, w := range out.Response.Warnings {
			if n := len([]rune(w)); n > MaxWarning {
				t.Fatalf("warning of %d characters, want at most %d: %q", n, MaxWarning, w)
			}
		}
	})
}
