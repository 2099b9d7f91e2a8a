package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"
)

// MaxBodyBytes is the largest request accepted. The API server caps objects at about 1.5 MiB in etcd
// and sends object and oldObject; anything much larger is not from an API server.
const MaxBodyBytes = 7 << 20

var reviewTypeMeta = metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}

// httpError is a client error answered with its HTTP status and a one-line reason.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// readReview reads and decodes the request body as an admission/v1 AdmissionReview with a request.
func readReview(w http.ResponseWriter, r *http.Request) (*admissionv1.AdmissionReview, []byte, error) {
	if r.Method != http.MethodPost {
		return nil, nil, &httpError{http.StatusMethodNotAllowed, "use POST with an admission.k8s.io/v1 AdmissionReview body"}
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	return decodeReview(body)
}

// decodeReview decodes a body as an admission/v1 AdmissionReview with a request.
func decodeReview(body []byte) (*admissionv1.AdmissionReview, []byte, error) {
	var review admissionv1.AdmissionReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		return nil, nil, &httpError{http.StatusBadRequest, fmt.Sprintf("the body is not an AdmissionReview in JSON: %v", err)}
	}
	if err := checkEnvelope(review.APIVersion, review.Kind, review.Request == nil || review.Request.UID == ""); err != nil {
		return nil, nil, err
	}
	return &review, body, nil
}

// checkEnvelope refuses anything but an admission/v1 AdmissionReview that carries a request.
func checkEnvelope(apiVersion, kind string, noRequest bool) error {
	if apiVersion != reviewTypeMeta.APIVersion || kind != reviewTypeMeta.Kind {
		return &httpError{http.StatusBadRequest, fmt.Sprintf("got %s %s; meshwarden answers admission.k8s.io/v1 AdmissionReview only (set admissionReviewVersions: [v1])", apiVersion, kind)}
	}
	if noRequest {
		return &httpError{http.StatusBadRequest, "the AdmissionReview has no request or no request.uid"}
	}
	return nil
}

// RequireReview answers every request that is not a POSTed admission/v1 AdmissionReview with a request
// the way /inject does (400, 405 or 413 with a reason) and hands the others, body intact, to h. It puts
// handlers built on controller-runtime's admission.Webhook, which answers such bodies with HTTP 200, on
// the same footing as /inject.
func RequireReview(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, body, err := readReview(w, r)
		if err != nil {
			writeError(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		h.ServeHTTP(w, r)
	})
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", MaxBodyBytes)}
	case err != nil:
		return nil, &httpError{http.StatusBadRequest, "reading the request body: " + err.Error()}
	}
	return body, nil
}

// writeReview answers with the response for uid.
func writeReview(w http.ResponseWriter, uid types.UID, resp *admissionv1.AdmissionResponse) {
	resp.UID = uid
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: reviewTypeMeta, Response: resp})
	if err != nil {
		http.Error(w, "encoding the response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if errors.As(err, &he) {
		http.Error(w, he.msg, he.code)
		return
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func allowed() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }
