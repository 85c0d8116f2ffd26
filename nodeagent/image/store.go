package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options configure a Store.
type Options struct {
	// InsecureRegistries are registries (host or host:port) reached over
	// plain HTTP, e.g. loopback test registries; all others use HTTPS only.
	InsecureRegistries []string
}

// Image is an image ready to run.
type Image struct {
	// Ref is the reference as asked.
	Ref string
	// ID names the image by digest, as the API reports imageID:
	// "registry/repo@sha256:..." with the digest the reference resolved
	// to (the manifest's, or the index's for a multi-platform image).
	ID string
	// Config is how the image wants to be run.
	Config v1.Config
	// Layers are the unpacked layer directories, bottom first.
	Layers []string
	// PullDuration is how long the pull took; zero when the store already
	// held the image.
	PullDuration time.Duration
}

// Store holds images under one directory. It is safe for concurrent use;
// only one Store may use a directory at a time.
type Store struct {
	root     string
	insecure map[string]bool // registry host[:port] -> plain HTTP allowed

	refLocks   keyedLocks // by normalised reference
	layerLocks keyedLocks // by diff id

	// onUnpack, when set (by tests), is called before a layer is unpacked.
	onUnpack func(diffID v1.Hash)
}

// NewStore opens the store in root, creating it (mode 0700) if needed, and
// removes what an interrupted unpack or write left behind.
func NewStore(root string, opts Options) (*Store, error) {
	s := &Store{root: root, insecure: map[string]bool{}}
	for _, r := range opts.InsecureRegistries {
		reg, err := name.NewRegistry(r, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("insecure registry %q: %w", r, err)
		}
		s.insecure[reg.RegistryStr()] = true
	}
	if err := os.RemoveAll(s.path("tmp")); err != nil {
		return nil, fmt.Errorf("image store %q: clear tmp: %w", root, err)
	}
	for _, dir := range []string{"", "refs", "layers", "tmp"} {
		if err := os.MkdirAll(s.path(dir), 0o700); err != nil {
			return nil, fmt.Errorf("image store %q: %w", root, err)
		}
	}
	return s, nil
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// Ensure returns the image for ref, asking its registry only as
// opts.Policy says (see PullOptions), and never for ReservedRegistry's.
// Each layer is unpacked once per diff id: concurrent calls for the same
// reference, or for images sharing layers, wait for one another rather
// than pull or unpack twice.
func (s *Store) Ensure(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	r, err := s.parse(ref)
	if err != nil {
		return nil, err
	}
	unlock, err := s.refLocks.lock(ctx, r.Name())
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	defer unlock()

	rec, err := s.lookup(r.Name())
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	switch plan(opts.Policy, reserved(r), rec != nil) {
	case useStored:
		return s.image(ref, rec)
	case failNever:
		return nil, fmt.Errorf("image %q: %w", ref, ErrNeverPull)
	case failMissing:
		return nil, fmt.Errorf("image %q: %w", ref, ErrNotImported)
	}
	start := time.Now()
	got, pulled, err := s.fetch(ctx, r, rec, opts.Keyring)
	if err != nil {
		return nil, fmt.Errorf("pull image %q: %w", ref, err)
	}
	img, err := s.image(ref, got)
	if err != nil {
		return nil, err
	}
	if pulled {
		img.PullDuration = time.Since(start)
	}
	return img, nil
}

// parse normalises ref like Docker does (busybox ->
// index.docker.io/library/busybox:latest), marking it insecure if its
// registry is one of the store's insecure registries.
func (s *Store) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	if s.insecure[r.Context().RegistryStr()] {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", ref, err)
		}
	}
	return r, nil
}

// record is what the store keeps of one reference.
type record struct {
	// Ref is the normalised reference.
	Ref string `json:"ref"`
	// ID is repository@digest (see Image.ID).
	ID string `json:"id"`
	// Config is the image's config file as its source served it.
	Config json.RawMessage `json:"config"`
	// DiffIDs are the layers' uncompressed digests, bottom first.
	DiffIDs []v1.Hash `json:"diffIDs"`
}

func (s *Store) recordPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return s.path("refs", hex.EncodeToString(sum[:])+".json")
}

// lookup returns the record of the normalised ref, or nil if the store
// does not hold it (or no longer holds all its layers).
func (s *Store) lookup(ref string) (*record, error) {
	b, err := os.ReadFile(s.recordPath(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read record: %w", err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("read record %q: %w", s.recordPath(ref), err)
	}
	for _, d := range rec.DiffIDs {
		if _, err := os.Lstat(s.layerPath(d)); err != nil {
			return nil, nil
		}
	}
	return &rec, nil
}

// save writes rec atomically: a reader sees the old record or the new.
func (s *Store) save(rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("record %q: %w", rec.Ref, err)
	}
	f, err := os.CreateTemp(s.path("tmp"), "ref-")
	if err != nil {
		return fmt.Errorf("record %q: %w", rec.Ref, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.recordPath(rec.Ref))
	}
	if err != nil {
		return fmt.Errorf("record %q: %w", rec.Ref, err)
	}
	return nil
}

// image turns a record into the Image asked for as ref.
func (s *Store) image(ref string, rec *record) (*Image, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(rec.Config))
	if err != nil {
		return nil, fmt.Errorf("image %q: config: %w", ref, err)
	}
	img := &Image{Ref: ref, ID: rec.ID, Config: cf.Config}
	for _, d := range rec.DiffIDs {
		img.Layers = append(img.Layers, s.layerPath(d))
	}
	return img, nil
}

// add unpacks img's layers and records it as ref (normalised), with id as
// its Image.ID.
func (s *Store) add(ctx context.Context, ref name.Reference, id string, img v1.Image) (*record, error) {
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	rec := &record{Ref: ref.Name(), ID: id, Config: cfg}
	for _, l := range layers {
		d, err := s.ensureLayer(ctx, l)
		if err != nil {
			return nil, err
		}
		rec.DiffIDs = append(rec.DiffIDs, d)
	}
	if err := s.save(rec); err != nil {
		return nil, err
	}
	return rec, nil
}
