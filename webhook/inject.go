package webhook

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshwarden/meshwarden/inject"
)

// NamespaceLookup returns what injection needs to know about a namespace.
type NamespaceLookup func(ctx context.Context, name string) (inject.Namespace, error)

// InjectHandler answers /inject.
type InjectHandler struct {
	Injector   *inject.Injector
	Namespaces NamespaceLookup
	Log        logr.Logger
	Metrics    *Metrics
	// Floor skips the injector and allows every request: the cost of only reading and answering,
	// which the benchmarks compare against. Never set in a server.
	Floor bool
	// Timeout bounds one request, body read included, so that a slow client or a slow API server
	// gets an answer before the API server's own webhook timeout (default 10 s) gives up on us.
	Timeout time.Duration
}

// DefaultTimeout leaves a second of the API server's default 10 s webhook timeout for the network.
const DefaultTimeout = 9 * time.Second

// ServeHTTP reads top to bottom: decode, admit (decide, render, plan), respond.
func (h *InjectHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			h.Metrics.Panics.Inc()
			h.Metrics.Requests.WithLabelValues("error").Inc()
			h.Log.Error(nil, "recovered from a panic answering /inject", "panic", p)
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
		h.Metrics.Duration.Observe(time.Since(start).Seconds())
	}()

	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// A client that trickles its body is cut off at the deadline instead of holding a goroutine.
	_ = http.NewResponseController(w).SetReadDeadline(start.Add(timeout))
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	r = r.WithContext(ctx)

	review, body, err := readPodReview(w, r)
	if err != nil {
		h.Metrics.Requests.WithLabelValues("error").Inc()
		writeError(w, err)
		return
	}
	resp, err := h.admit(r.Context(), review, body)
	if err != nil {
		h.Metrics.Requests.WithLabelValues("error").Inc()
		writeError(w, err)
		return
	}
	writeReview(w, review.Request.UID, resp)
}

func (h *InjectHandler) admit(ctx context.Context, review *podReview, body []byte) (*admissionv1.AdmissionResponse, error) {
	req := review.Request
	if h.Floor {
		return allowed(), nil
	}
	// Only pod creation can add containers; anything else the webhook is sent is allowed untouched.
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.SubResource != "" {
		return allowed(), nil
	}
	// The request-scoped logger is built only when something is logged: with a JSON logger,
	// WithValues encodes its fields at once, on every request.
	log := func() logr.Logger {
		return h.Log.WithValues("uid", req.UID, "namespace", req.Namespace, "name", req.Name)
	}
	ns, err := h.Namespaces(ctx, req.Namespace)
	if err != nil {
		log().Error(err, "looking up the namespace")
		return nil, err
	}
	if req.Object == nil {
		return nil, &httpError{http.StatusBadRequest, "the AdmissionReview's request has no object to inject"}
	}
	res, err := h.Injector.Inject(inject.Request{View: req.Object, LoadPod: podBytes(body), Namespace: ns})
	if errors.Is(err, inject.ErrNotAPod) {
		return nil, &httpError{http.StatusBadRequest, err.Error()}
	}
	if err != nil {
		return nil, err
	}
	switch {
	case len(res.Denied) > 0:
		h.Metrics.Requests.WithLabelValues("denied").Inc()
		h.Metrics.Denials.WithLabelValues(string(res.Reason)).Inc()
		log().Info("denied", "reason", res.Reason, "problems", len(res.Denied))
		return denied(res), nil
	case !res.Injected:
		h.Metrics.Requests.WithLabelValues("skipped").Inc()
		h.Metrics.Skips.WithLabelValues(string(res.Reason)).Inc()
		if h.Log.V(1).Enabled() {
			log().V(1).Info("skipped", "reason", res.Reason)
		}
		return allowed(), nil
	}
	h.Metrics.Requests.WithLabelValues("injected").Inc()
	h.Metrics.Injections.Inc()
	if h.Log.V(1).Enabled() {
		log().V(1).Info("injected", "reason", res.Reason, "operations", len(res.Patch))
	}
	if len(res.Patch) == 0 {
		return allowed(), nil
	}
	patch, err := inject.MarshalPatch(res.Patch)
	if err != nil {
		return nil, err
	}
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}, nil
}

// denied lists every problem, each naming its field, in one message kubectl shows as is.
func denied(res inject.Result) *admissionv1.AdmissionResponse {
	msgs := make([]string, len(res.Denied))
	for i, e := range res.Denied {
		msgs[i] = e.Error()
	}
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusUnprocessableEntity,
			Reason:  metav1.StatusReasonInvalid,
			Message: strings.Join(msgs, "; "),
		},
	}
}
