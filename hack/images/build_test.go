package images

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// buildPause builds the pause image, the smallest program, with go build like `make images`.
func buildPause(t *testing.T, arch string) Result {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go build; skipped with -short")
	}
	im, _ := Lookup("pause")
	rs, err := Build(context.Background(), Options{Arch: arch, Epoch: testEpoch, OutDir: t.TempDir()}, im)
	if err != nil {
		t.Fatal(err)
	}
	return rs[0]
}

// Two builds of the same source give the same binary, so the same digest and the same archive.
func TestBuildIsReproducible(t *testing.T) {
	a, b := buildPause(t, runtime.GOARCH), buildPause(t, runtime.GOARCH)
	if a.Digest != b.Digest {
		t.Errorf("digests differ: %s and %s", a.Digest, b.Digest)
	}
	if !bytes.Equal(readFile(t, a.Path), readFile(t, b.Path)) {
		t.Errorf("archives %s and %s differ", a.Path, b.Path)
	}
}

// The archive is an OCI image layout naming the image as containerd's import expects, with the
// manifest unchanged, so the digest printed is the digest containerd shows.
func TestArchiveIsOCILayout(t *testing.T) {
	r := buildPause(t, runtime.GOARCH)
	dir := t.TempDir()
	untar(t, r.Path, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(m.Manifests))
	}
	desc := m.Manifests[0]
	if desc.Digest != r.Digest {
		t.Errorf("index names %s, Build printed %s", desc.Digest, r.Digest)
	}
	if got := desc.Annotations[annotationContainerdName]; got != "meshwarden.local/test/pause:dev" {
		t.Errorf("%s = %q", annotationContainerdName, got)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
}

// GOARCH=arm64 cross-compiles the program and says so in the config.
func TestBuildForArm64(t *testing.T) {
	r := buildPause(t, "arm64")
	dir := t.TempDir()
	untar(t, r.Path, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(r.Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != "arm64" {
		t.Errorf("config platform %s/%s, want linux/arm64", cfg.OS, cfg.Architecture)
	}
	if filepath.Base(filepath.Dir(r.Path)) != "linux_arm64" {
		t.Errorf("archive at %s, want under linux_arm64/", r.Path)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no /usr/local/bin/pause in the layer: %v", err)
		}
		if h.Name != "usr/local/bin/pause" {
			continue
		}
		prog, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(prog))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("binary is for %s, want EM_AARCH64", f.Machine)
		}
		if f.Type != elf.ET_EXEC {
			t.Errorf("binary type %s, want a static executable (ET_EXEC)", f.Type)
		}
		return
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// untar unpacks an archive of this package's own making (no links, no absolute paths).
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(readFile(t, archive)))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			var body []byte
			if body, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(path, body, 0o644)
			}
		default:
			t.Fatalf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
