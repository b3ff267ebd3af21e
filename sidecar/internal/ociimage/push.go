package ociimage

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Push pushes img to ref (registry/repository:tag) and then the artifacts
// that refer to it, by digest, so that the registry lists them among img's
// referrers (through the referrers API, or the sha256-<digest> tag on a
// registry without it). Credentials are docker login's
// (~/.docker/config.json and its helpers). It returns the image's
// reference by digest, the one to pin.
func Push(ctx context.Context, ref string, img v1.Image, artifacts ...Artifact) (name.Digest, error) {
	return push(ctx, ref, img, artifacts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

func push(ctx context.Context, ref string, img v1.Image, artifacts []Artifact, opts ...remote.Option) (name.Digest, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("push: %w", err)
	}
	opts = append(opts, remote.WithContext(ctx), remote.WithReferrersTagFallback(true))
	if err := remote.Write(r, img, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", r, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	repo := r.Context()
	for _, a := range artifacts {
		for _, b := range a.Blobs {
			if err := remote.WriteLayer(repo, static.NewLayer(b, types.MediaType(SBOMMediaType)), opts...); err != nil {
				return name.Digest{}, fmt.Errorf("push %s: artifact blob: %w", repo, err)
			}
		}
		if err := remote.Put(repo.Digest(a.Digest().String()), a, opts...); err != nil {
			return name.Digest{}, fmt.Errorf("push %s: artifact: %w", repo, err)
		}
	}
	return repo.Digest(digest.String()), nil
}
