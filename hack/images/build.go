package images

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options say what Build builds and where.
type Options struct {
	// Arch is the GOARCH of the binaries and the architecture in each image's config.
	Arch string
	// Epoch is every timestamp in the images and archives: the same binaries give the same digests.
	Epoch time.Time
	// OutDir receives <OutDir>/linux_<arch>/<name>.tar.
	OutDir string
}

// Result is one image built.
type Result struct {
	Image  Image
	Digest v1.Hash // the manifest's digest, which containerd shows after the import
	Path   string  // the archive
}

// ArchivePath is where Build writes im's archive for arch under outDir.
func ArchivePath(outDir, arch string, im Image) string {
	return filepath.Join(outDir, "linux_"+arch, im.Name+".tar")
}

// Build builds the programs of ims and writes an archive of each image.
func Build(ctx context.Context, opts Options, ims ...Image) ([]Result, error) {
	binDir, err := os.MkdirTemp("", "meshwarden-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(binDir)
	if err := BuildBinaries(ctx, opts.Arch, binDir, ims...); err != nil {
		return nil, err
	}
	results := make([]Result, 0, len(ims))
	for _, im := range ims {
		r, err := buildOne(opts, im, filepath.Join(binDir, im.Binary()))
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
		results = append(results, r)
	}
	return results, nil
}

func buildOne(opts Options, im Image, binary string) (Result, error) {
	prog, err := os.ReadFile(binary)
	if err != nil {
		return Result{}, err
	}
	img, err := New(im, opts.Arch, prog, opts.Epoch)
	if err != nil {
		return Result{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	path := ArchivePath(opts.OutDir, opts.Arch, im)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return Result{}, err
	}
	// Written beside and renamed, so an interrupted build never leaves half an archive to import.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+im.Name+"-*.tar")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := WriteArchive(tmp, img, im.Ref(), im.Tag, opts.Epoch); err != nil {
		tmp.Close()
		return Result{}, err
	}
	if err := tmp.Close(); err != nil {
		return Result{}, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return Result{}, err
	}
	return Result{Image: im, Digest: digest, Path: path}, os.Rename(tmp.Name(), path)
}
