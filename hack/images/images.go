// Package images builds meshwarden's container images without Docker: each is one layer on an empty
// image holding one static Go binary, written as an OCI image layout tarball that
// `ctr images import` accepts. `make images` runs it through hack/make-images.
//
// The definitions below are data, so that tests can hold them against the Dockerfile, which
// stays for users who have Docker.
package images

import (
	"path"

	"github.com/meshwarden/meshwarden/config"
	"github.com/meshwarden/meshwarden/version"
)

// module is this repository's Go module; packages are named in full so that `go build` finds them
// from any directory inside it.
const module = "github.com/meshwarden/meshwarden"

// TestRegistry names the images that only tests use. No registry serves it: the images reach a node
// by `ctr images import`, and the name says they are never to be shipped.
const TestRegistry = "meshwarden.local/test"

// BinDir is where each image keeps its program, as the Dockerfile does.
const BinDir = "/usr/local/bin"

// defaultPath is Docker's default PATH; an image without one leaves `kubectl exec` unable to find
// anything.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Image is one image: which program it carries, as whom it runs and the name it is tagged with.
type Image struct {
	// Name names the image and, for shipped images, its Dockerfile target.
	Name string
	// Package is the Go package of the program; the binary is named after its last element.
	Package string
	// Repository and Tag make up the image reference.
	Repository, Tag string
	// User is the config's "uid:gid". Numeric, since the image has no /etc/passwd.
	User string
	// Env is added to the config's environment after PATH.
	Env []string
	// Test marks an image that only tests use: it is never shipped and has no Dockerfile target.
	Test bool
	// Files are more files for the layer, read from disk when the image is built (programs built by
	// another module, such as pilot-agent, and their data).
	Files []File
	// Command is the entrypoint when it is not the image's Go program, e.g. one of Files.
	Command string
}

// File is one more file of an image's layer.
type File struct {
	// Path is where it lies in the image; Source is the file to copy there.
	Path, Source string
	// Mode is its permission bits: 0o755 for programs, 0o644 for data.
	Mode int64
}

// All are the images `make images` builds: the shipped ones, then the test ones.
var All = []Image{
	// The webhook and guard run unprivileged (distroless's nonroot user in the Dockerfile).
	{Name: "meshwarden", Package: module + "/cmd/meshwarden",
		Repository: "ghcr.io/meshwarden/meshwarden", Tag: version.Version, User: "65532:65532"},
	// Programming the pod's netns takes root and NET_ADMIN; the init container runs it for a moment only.
	{Name: "meshwarden-init", Package: module + "/cmd/meshwarden-init",
		Repository: config.InitImageRepository, Tag: version.Version, User: "0:0"},
	// containerd's sandbox image on the tests' real node; the uid is that of registry.k8s.io/pause.
	{Name: "pause", Package: module + "/test/standin/pause",
		Repository: TestRegistry + "/pause", Tag: "dev", User: "65535:65535", Test: true},
	// The workload of the real node's end-to-end tests: HTTP on :8080.
	{Name: "meshwarden-test-app", Package: module + "/test/standin/app",
		Repository: TestRegistry + "/meshwarden-test-app", Tag: "dev", User: "65532:65532", Test: true},
	// Envoy's stand-in at Envoy's path, where pilot-agent starts Envoy, and as the entrypoint, since the
	// envoy profile's proxy container gives only args. Its uid is the proxy's (1337), and its report
	// goes to /tmp because the proxy container's root filesystem is read-only, with an emptyDir at /tmp.
	{Name: "meshwarden-test-envoy-standin", Package: module + "/test/standin/envoy",
		Repository: TestRegistry + "/meshwarden-test-envoy-standin", Tag: "dev", User: "1337:1337",
		Env: []string{"MESHWARDEN_STANDIN_REPORT=/tmp/envoy-standin-report.json"}, Test: true},
}

// Binary is the program's file name, as `go build -o dir/` names it.
func (im Image) Binary() string { return path.Base(im.Package) }

// Path is where the program lies in the image.
func (im Image) Path() string { return path.Join(BinDir, im.Binary()) }

// Entrypoint is the program alone, so that a pod's args (the envoy profile gives only args) go to it.
func (im Image) Entrypoint() []string {
	if im.Command != "" {
		return []string{im.Command}
	}
	return []string{im.Path()}
}

// Ref is the image's tagged reference.
func (im Image) Ref() string { return im.Repository + ":" + im.Tag }

// Lookup returns the image named name among All.
func Lookup(name string) (Image, bool) {
	for _, im := range All {
		if im.Name == name {
			return im, true
		}
	}
	return Image{}, false
}
