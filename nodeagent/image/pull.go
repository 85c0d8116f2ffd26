package image

import (
	"context"
	"fmt"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// fetch asks ref's registry which image ref names now and pulls it,
// unless that is have (the store's record of ref, or nil). The keyring's
// credentials for the registry are tried in turn, as the kubelet tries
// them, the last failure reported; with none, the pull is anonymous. It
// reports whether it pulled.
func (s *Store) fetch(ctx context.Context, ref name.Reference, have *record, keyring *Keyring) (*record, bool, error) {
	creds := keyring.lookup(ref)
	if len(creds) == 0 {
		creds = []authn.Authenticator{authn.Anonymous}
	}
	var err error
	for _, auth := range creds {
		var rec *record
		var pulled bool
		if rec, pulled, err = s.fetchWith(ctx, ref, have, auth); err == nil {
			return rec, pulled, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, false, err
}

// fetchWith is fetch with one credential. A HEAD of the manifest tells
// its digest without counting as a pull (Docker Hub's rate limit counts
// GETs): if it is have's, that is all. Otherwise, or if the HEAD fails
// (not every registry answers HEAD well), the manifest's GET says why or
// goes on to the pull, which fetches only the layers the store lacks. For
// a multi-platform index it picks linux on this machine's architecture.
func (s *Store) fetchWith(ctx context.Context, ref name.Reference, have *record, auth authn.Authenticator) (*record, bool, error) {
	p, err := remote.NewPuller(
		remote.WithContext(ctx),
		remote.WithTransport(s.transport()),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
		remote.WithAuth(auth),
	)
	if err != nil {
		return nil, false, err
	}
	if have != nil {
		if d, err := p.Head(ctx, ref); err == nil && have.ID == digestID(ref, d.Digest) {
			return have, false, nil
		}
	}
	desc, err := p.Get(ctx, ref)
	if err != nil {
		return nil, false, err
	}
	id := digestID(ref, desc.Digest)
	if have != nil && have.ID == id {
		return have, false, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, false, err
	}
	rec, err := s.add(ctx, ref, id, img)
	if err != nil {
		return nil, false, err
	}
	return rec, true, nil
}

// digestID is the Image.ID of ref resolved to d.
func digestID(ref name.Reference, d v1.Hash) string {
	return ref.Context().Digest(d.String()).String()
}

// transport is the HTTP transport for pulls. go-containerregistry falls
// back to plain HTTP for loopback and private-network registries; the
// store allows it only for its insecure registries.
func (s *Store) transport() http.RoundTripper {
	return httpsOnly{insecure: s.insecure, next: remote.DefaultTransport}
}

// httpsOnly refuses plain HTTP requests except to insecure registries.
type httpsOnly struct {
	insecure map[string]bool
	next     http.RoundTripper
}

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !t.insecure[req.URL.Host] {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s: not an insecure registry", req.URL.Host)
	}
	return t.next.RoundTrip(req)
}
