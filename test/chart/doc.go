// Package chart tests the Helm chart in charts/meshwarden with the project's helm binary (bin/helm,
// built by `make tools`): golden `helm template` outputs (rewritten with `go test ./test/chart -update`),
// strict decoding of every rendered object into its Go API type, the config file the chart renders,
// the webhook selectors evaluated against namespaces and pods, RBAC, schema refusals and `helm lint`.
// The install test runs the chart against a real control plane (test/cluster).
//
// Without bin/helm the tests skip, unless CI is set, where a missing binary is a failure.
package chart
