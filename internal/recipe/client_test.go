package recipe

import (
	"errors"
	"testing"
)

func TestNewClientMirrorAndToken(t *testing.T) {
	env := func(k string) string { return map[string]string{"GH_TOKEN": "sekrit"}[k] }
	c, err := NewClient("", env)
	if err != nil || c.Rewrite != nil || c.Header.Get("Authorization") != "Bearer sekrit" {
		t.Fatalf("direct: %+v, %v", c, err)
	}
	c, err = NewClient("http://mirror.test/m/", env)
	if err != nil || c.Header.Get("Authorization") != "" {
		t.Fatalf("mirror got the token: %+v, %v", c, err)
	}
	for in, want := range map[string]string{
		"https://github.com/o/r/releases/download/v1/x.tar.gz": "http://mirror.test/m/github.com/o/r/releases/download/v1/x.tar.gz",
		"https://example.org/a%20b?x=1":                        "http://mirror.test/m/example.org/a%20b?x=1",
	} {
		if got := c.Rewrite(in); got != want {
			t.Errorf("Rewrite(%s) = %s; want %s", in, got, want)
		}
	}
	if c, _ := NewClient("", func(string) string { return "" }); c.Header.Get("Authorization") != "" {
		t.Error("Authorization without GH_TOKEN")
	}
	for _, bad := range []string{"mirror.test", "/srv/mirror", "http://"} {
		if _, err := NewClient(bad, env); !errors.Is(err, ErrMirrorBase) {
			t.Errorf("base %q: %v", bad, err)
		}
	}
}
