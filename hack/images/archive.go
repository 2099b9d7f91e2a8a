package images

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on the index entry that name the image. containerd takes the full reference from its
// own annotation; the OCI one holds the tag, as `ctr images export` writes it.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationOCIRefName     = "org.opencontainers.image.ref.name"
)

// WriteArchive writes img, named ref with tag, as an OCI image layout in one tar stream (what `ctr
// images import` reads). The manifest goes in unchanged, so the digest containerd
// shows is the image's own; a Docker archive would have containerd write a manifest of its own.
// Entries have fixed order and times, so the same image gives the same bytes.
func WriteArchive(w io.Writer, img v1.Image, ref, tag string, epoch time.Time) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Digest:    digest,
			Size:      int64(len(manifest)),
			Annotations: map[string]string{
				annotationContainerdName: ref,
				annotationOCIRefName:     tag,
			},
		}},
	})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(header(name, tar.TypeReg, 0o644, int64(len(data)), epoch)); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(header(dir, tar.TypeDir, 0o755, 0, epoch)); err != nil {
			return err
		}
	}
	for _, l := range layers {
		if err := putLayer(tw, l, epoch); err != nil {
			return err
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := put(blobPath(cfgName), config); err != nil {
		return err
	}
	if err := put(blobPath(digest), manifest); err != nil {
		return err
	}
	return tw.Close()
}

// putLayer streams a compressed layer into the archive: a binary's layer is tens of megabytes.
func putLayer(tw *tar.Writer, l v1.Layer, epoch time.Time) error {
	digest, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := tw.WriteHeader(header(blobPath(digest), tar.TypeReg, 0o644, size, epoch)); err != nil {
		return err
	}
	if n, err := io.Copy(tw, rc); err != nil {
		return err
	} else if n != size {
		return fmt.Errorf("layer %s: %d bytes, want %d", digest, n, size)
	}
	return nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
