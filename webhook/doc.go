// Package webhook holds meshwarden's HTTP admission handlers. The injection handler reads top to
// bottom as decode → decide/render (package inject) → respond; everything about HTTP and the
// AdmissionReview envelope lives here and nothing about injection does.
package webhook
