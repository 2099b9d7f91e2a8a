package images

import (
	"archive/tar"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

// The image holds the program at its path and nothing else, and its config runs it as the
// definition says, with every time the epoch.
func TestNewImage(t *testing.T) {
	im, _ := Lookup("meshwarden")
	img, err := New(im, "arm64", []byte("not really a program"), testEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want OCI", mt)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := v1.Config{
		Entrypoint: []string{"/usr/local/bin/meshwarden"},
		User:       "65532:65532",
		Env:        []string{defaultPath},
		WorkingDir: "/",
		Labels:     map[string]string{"org.opencontainers.image.version": im.Tag},
	}
	if diff := cmp.Diff(want, cfg.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if cfg.OS != "linux" || cfg.Architecture != "arm64" {
		t.Errorf("platform %s/%s, want linux/arm64", cfg.OS, cfg.Architecture)
	}
	if !cfg.Created.Equal(testEpoch) || len(cfg.History) != 1 || !cfg.History[0].Created.Equal(testEpoch) {
		t.Errorf("created %v, history %+v: want the epoch %v", cfg.Created, cfg.History, testEpoch)
	}

	type entry struct {
		Name, Content string
		Type          byte
		Mode          int64
		UID, GID      int
		ModTime       time.Time
	}
	var got []entry
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, err %v: want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, entry{h.Name, string(body), h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.UTC()})
	}
	dir := func(name string) entry { return entry{name, "", tar.TypeDir, 0o755, 0, 0, testEpoch} }
	wantEntries := []entry{
		dir("usr/"), dir("usr/local/"), dir("usr/local/bin/"),
		{"usr/local/bin/meshwarden", "not really a program", tar.TypeReg, 0o755, 0, 0, testEpoch},
	}
	if diff := cmp.Diff(wantEntries, got); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}
}

// Only the program's bytes, the epoch and the definition make the digest.
func TestNewImageIsDeterministic(t *testing.T) {
	im, _ := Lookup("pause")
	digest := func(prog string, epoch time.Time) v1.Hash {
		t.Helper()
		img, err := New(im, "amd64", []byte(prog), epoch)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := digest("program", testEpoch)
	if b := digest("program", testEpoch); a != b {
		t.Errorf("same input, digests %s and %s", a, b)
	}
	if b := digest("program 2", testEpoch); a == b {
		t.Errorf("another program, same digest %s", a)
	}
	if b := digest("program", testEpoch.Add(time.Second)); a == b {
		t.Errorf("another epoch, same digest %s", a)
	}
}

// Root only where the program needs it, and test images named as such.
func TestDefinitions(t *testing.T) {
	needsRoot := map[string]bool{"meshwarden-init": true} // nftables in the pod's netns: root and NET_ADMIN
	seen := map[string]bool{}
	for _, im := range All {
		if seen[im.Name] {
			t.Errorf("%s: defined twice", im.Name)
		}
		seen[im.Name] = true
		if root := im.User == "0:0"; root != needsRoot[im.Name] {
			t.Errorf("%s: user %q; only %v may run as root", im.Name, im.User, needsRoot)
		}
		if isTest := len(im.Repository) > len(TestRegistry) && im.Repository[:len(TestRegistry)+1] == TestRegistry+"/"; isTest != im.Test {
			t.Errorf("%s: repository %s, test image %v: test images, and only they, live under %s", im.Name, im.Repository, im.Test, TestRegistry)
		}
	}
}
