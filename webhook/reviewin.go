package webhook

import (
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kjson "sigs.k8s.io/json"

	"github.com/meshwarden/meshwarden/inject"
)

// podReview is an admission/v1 AdmissionReview as /inject reads it: the few request fields it uses,
// and the object decoded straight into the injector's view of a pod. One pass over the body reads
// everything; the pod's bytes are recovered from the body only when injection needs them (rarely).
// Decoding is case-sensitive, as the API server's: "Request" is not "request".
type podReview struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Request    *podRequest `json:"request"`
}

// podRequest is the part of an AdmissionRequest /inject reads.
type podRequest struct {
	UID         types.UID               `json:"uid"`
	Kind        metav1.GroupVersionKind `json:"kind"`
	SubResource string                  `json:"subResource"`
	Namespace   string                  `json:"namespace"`
	Name        string                  `json:"name"`
	Operation   admissionv1.Operation   `json:"operation"`
	Object      *inject.PodView         `json:"object"`
}

// readPodReview reads the body and decodes it as a podReview. An object that does not fit a pod's
// shape is an error only when the request is about a pod.
func readPodReview(w http.ResponseWriter, r *http.Request) (*podReview, []byte, error) {
	if r.Method != http.MethodPost {
		return nil, nil, &httpError{http.StatusMethodNotAllowed, "use POST with an admission.k8s.io/v1 AdmissionReview body"}
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	var review podReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &review); err != nil {
		// Either the body is no review at all, or the object is not pod-shaped: tell them apart with
		// the general decoder, and let a non-pod object through untouched.
		general, _, gerr := decodeReview(body)
		if gerr != nil {
			return nil, nil, gerr
		}
		if isPod(general.Request.Kind) {
			return nil, nil, &httpError{http.StatusBadRequest, fmt.Sprintf("%v: the object is not a pod in JSON: %v", inject.ErrNotAPod, err)}
		}
		g := general.Request
		review = podReview{APIVersion: general.APIVersion, Kind: general.Kind, Request: &podRequest{
			UID: g.UID, Kind: g.Kind, SubResource: g.SubResource, Namespace: g.Namespace, Name: g.Name, Operation: g.Operation,
		}}
		return &review, body, nil
	}
	if err := checkEnvelope(review.APIVersion, review.Kind, review.Request == nil || review.Request.UID == ""); err != nil {
		return nil, nil, err
	}
	return &review, body, nil
}

func isPod(k metav1.GroupVersionKind) bool { return k.Kind == "Pod" && k.Group == "" }

// podBytes recovers the pod's bytes from the body, for the rare injection that needs them.
func podBytes(body []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		review, _, err := decodeReview(body)
		if err != nil {
			return nil, err
		}
		return review.Request.Object.Raw, nil
	}
}
