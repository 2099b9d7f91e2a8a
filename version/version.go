// Package version is the meshwarden release this binary belongs to. Images that meshwarden injects by
// default (meshwarden-init) carry the same tag, so a pod is always captured by the program of the
// release that injected it. Release builds may stamp it with
// -ldflags "-X github.com/meshwarden/meshwarden/version.Version=1.2.3"; the chart's appVersion must
// match the default (a test checks it).
package version

// Version is the release, without a leading v.
var Version = "0.1.0"
