package image

import (
	"context"
	"fmt"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pull fetches ref from its registry and adds it to the store. For a
// multi-platform index it picks linux on this machine's architecture.
func (s *Store) pull(ctx context.Context, ref name.Reference) (*record, error) {
	desc, err := remote.Get(ref,
		remote.WithContext(ctx),
		remote.WithTransport(s.transport()),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	)
	if err != nil {
		return nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	return s.add(ctx, ref, ref.Context().Digest(desc.Digest.String()).String(), img)
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
