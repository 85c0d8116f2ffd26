package image

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Reference annotations of an OCI layout's index: containerd's holds the
// full name; the OCI one often holds it too (skopeo, crane, ko).
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Import imports every OCI image layout directory and every image tarball
// (.tar, as docker save or go-containerregistry's tarball package write
// them) found directly in dir, so that they run without any pull: the way
// k3s preloads images on air-gapped nodes. A layout's images are named by
// their index annotation io.containerd.image.name or
// org.opencontainers.image.ref.name, a tarball's by its RepoTags.
//
// It returns the references imported. A file that fails is reported by its
// path in the returned error (one per file, joined); the others are still
// imported. Importing an image the store already holds under the same
// reference and config does nothing, so Import may run at every start.
func (s *Store) Import(ctx context.Context, dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("import images: %w", err)
	}
	var refs []string
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("import %q: %w", p, err))
			continue
		}
		var got []string
		switch {
		case fi.IsDir() && exists(filepath.Join(p, "oci-layout")):
			got, err = s.importLayout(ctx, p)
		case fi.Mode().IsRegular() && strings.HasSuffix(e.Name(), ".tar"):
			got, err = s.importTarball(ctx, p)
		default:
			continue
		}
		refs = append(refs, got...)
		if err != nil {
			errs = append(errs, fmt.Errorf("import %q: %w", p, err))
		}
	}
	return refs, errors.Join(errs...)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// importLayout imports the named images of the OCI layout in dir.
func (s *Store) importLayout(ctx context.Context, dir string) ([]string, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var refs []string
	var errs []error
	for _, desc := range im.Manifests {
		ref, err := s.importDescriptor(ctx, idx, desc)
		if err != nil {
			errs = append(errs, fmt.Errorf("manifest %s: %w", desc.Digest, err))
			continue
		}
		refs = append(refs, ref)
	}
	return refs, errors.Join(errs...)
}

func (s *Store) importDescriptor(ctx context.Context, idx v1.ImageIndex, desc v1.Descriptor) (string, error) {
	refName := desc.Annotations[annotationContainerdName]
	if refName == "" {
		refName = desc.Annotations[annotationRefName]
	}
	if refName == "" {
		return "", fmt.Errorf("no %s or %s annotation", annotationContainerdName, annotationRefName)
	}
	ref, err := s.parse(refName)
	if err != nil {
		return "", err
	}
	img, err := layoutImage(idx, desc)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", refName, err)
	}
	digest := func() (v1.Hash, error) { return desc.Digest, nil }
	if err := s.importImage(ctx, ref, img, digest); err != nil {
		return "", fmt.Errorf("image %q: %w", refName, err)
	}
	return ref.Name(), nil
}

// layoutImage returns the image desc names in idx, choosing this
// machine's platform if desc is itself an index.
func layoutImage(idx v1.ImageIndex, desc v1.Descriptor) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return idx.Image(desc.Digest)
	}
	child, err := idx.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	im, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	want := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.Satisfies(want) && m.MediaType.IsImage() {
			return child.Image(m.Digest)
		}
	}
	return nil, fmt.Errorf("no image for platform %s", want)
}

// importTarball imports the tagged images of a docker save tarball.
func (s *Store) importTarball(ctx context.Context, p string) ([]string, error) {
	open := func() (io.ReadCloser, error) { return os.Open(p) }
	m, err := tarball.LoadManifest(open)
	if err != nil {
		return nil, err
	}
	var refs []string
	var errs []error
	for i, d := range m {
		if len(d.RepoTags) == 0 {
			errs = append(errs, fmt.Errorf("image %d (%s) has no RepoTags", i, d.Config))
		}
		for _, t := range d.RepoTags {
			ref, err := s.importTag(ctx, open, t)
			if err != nil {
				errs = append(errs, fmt.Errorf("image %q: %w", t, err))
				continue
			}
			refs = append(refs, ref)
		}
	}
	return refs, errors.Join(errs...)
}

func (s *Store) importTag(ctx context.Context, open tarball.Opener, t string) (string, error) {
	tag, err := name.NewTag(t)
	if err != nil {
		return "", err
	}
	ref, err := s.parse(t)
	if err != nil {
		return "", err
	}
	img, err := tarball.Image(open, &tag)
	if err != nil {
		return "", err
	}
	// A tarball holds no manifest of the image as a registry would serve
	// it; its digest is that of the manifest go-containerregistry makes
	// (which compresses uncompressed layers to find their digests).
	if err := s.importImage(ctx, ref, img, img.Digest); err != nil {
		return "", err
	}
	return ref.Name(), nil
}

// importImage adds img as ref unless the store holds ref with the same
// config already (and so the same layers); digest is asked only if not.
func (s *Store) importImage(ctx context.Context, ref name.Reference, img v1.Image, digest func() (v1.Hash, error)) error {
	unlock, err := s.refLocks.lock(ctx, ref.Name())
	if err != nil {
		return err
	}
	defer unlock()
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	rec, err := s.lookup(ref.Name())
	if err != nil {
		return err
	}
	if rec != nil && sha256.Sum256(rec.Config) == sha256.Sum256(cfg) {
		return nil
	}
	d, err := digest()
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	_, err = s.add(ctx, ref, digestID(ref, d), img)
	return err
}
