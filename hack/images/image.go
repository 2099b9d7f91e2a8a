package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// New returns im's image for linux/arch around binary, the program's bytes. Every timestamp in it is
// epoch and nothing else varies, so the same binary always gives the same digest.
func New(im Image, arch string, binary []byte, epoch time.Time) (v1.Image, error) {
	files := []layerFile{{path: im.Path(), data: binary, mode: 0o755}}
	for _, f := range im.Files {
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, fmt.Errorf("file %s of the image: %w", f.Path, err)
		}
		files = append(files, layerFile{path: f.Path, data: data, mode: f.Mode})
	}
	layerTar, err := layerTar(files, epoch)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}

	// OCI media types throughout: empty.Image starts out with Docker's.
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     plainLayer{layer},
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "make images: " + im.Package},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: epoch}
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config = v1.Config{
		Entrypoint: im.Entrypoint(),
		User:       im.User,
		Env:        append([]string{defaultPath}, im.Env...),
		WorkingDir: "/",
		Labels:     map[string]string{"org.opencontainers.image.version": im.Tag},
	}
	return mutate.ConfigFile(img, cfg)
}

// plainLayer hides the tarball layer's Descriptor method, whose empty annotations map would make the
// image's Manifest() differ from its RawManifest() (which omits it), and validate.Image fail.
type plainLayer struct{ v1.Layer }

type layerFile struct {
	path string
	data []byte
	mode int64
}

// layerTar is the layer's content: for each file in path order, the directories down to it (each
// once), owned by root, then the file, programs executable by everyone (the image's user is not root
// for most images).
func layerTar(files []layerFile, epoch time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	written := map[string]bool{}
	for _, f := range files {
		dir := ""
		for _, elem := range strings.Split(strings.Trim(path.Dir(f.path), "/"), "/") {
			dir += elem + "/"
			if written[dir] {
				continue
			}
			written[dir] = true
			if err := tw.WriteHeader(header(dir, tar.TypeDir, 0o755, 0, epoch)); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(header(strings.TrimPrefix(f.path, "/"), tar.TypeReg, f.mode, int64(len(f.data)), epoch)); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// header is a tar header with nothing of this machine in it: root's ids, no user or group names,
// the fixed epoch for every time, and one format, so tar never picks another one for a long name.
func header(name string, typ byte, mode, size int64, epoch time.Time) *tar.Header {
	return &tar.Header{
		Name: name, Typeflag: typ, Mode: mode, Size: size,
		ModTime: epoch, Format: tar.FormatPAX,
	}
}
