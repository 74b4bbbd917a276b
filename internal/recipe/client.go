package recipe

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/stratalinux/strata/internal/download"
)

// ErrMirrorBase says that a mirror's base is not scheme://host[/prefix].
var ErrMirrorBase = errors.New("want scheme://host[/prefix]")

// NewClient is the downloader recipes fetch with: through the mirror at
// base when one is given (https://HOST/PATH is fetched as
// BASE/HOST/PATH), else directly, with $GH_TOKEN as a bearer token. The
// token goes only to the origin, never to a mirror.
func NewClient(base string, getenv func(string) string) (*download.Client, error) {
	rw, err := MirrorRewrite(base)
	if err != nil {
		return nil, err
	}
	c := &download.Client{Rewrite: rw, Header: http.Header{}, UserAgent: "strata-bake"}
	if tok := getenv("GH_TOKEN"); tok != "" && rw == nil {
		c.Header.Set("Authorization", "Bearer "+tok)
	}
	return c, nil
}

// MirrorRewrite maps https://HOST/PATH to BASE/HOST/PATH; nil for no
// mirror (base "").
func MirrorRewrite(base string) (func(string) string, error) {
	if base == "" {
		return nil, nil
	}
	b, err := url.Parse(base)
	if err != nil || b.Scheme == "" || b.Host == "" {
		return nil, ErrMirrorBase
	}
	prefix := strings.TrimSuffix(base, "/")
	return func(s string) string {
		u, err := url.Parse(s)
		if err != nil {
			return s
		}
		out := prefix + "/" + u.Host + u.EscapedPath()
		if u.RawQuery != "" {
			out += "?" + u.RawQuery
		}
		return out
	}, nil
}
