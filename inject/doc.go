// Package inject is the injection core shared by the webhook and `meshwarden inject`: it decides whether
// a pod gets the sidecar and why, renders the templates for the pod's settings, and turns the result into
// JSON patch operations against the pod exactly as the user (or the API server) wrote it.
//
// The pipeline reads top to bottom in Injector.Inject: parse annotations → decide → render → plan the
// patch. Rendering depends only on (template set, settings), so it is cached; the per-pod work is
// finding where the rendered pieces go.
package inject
