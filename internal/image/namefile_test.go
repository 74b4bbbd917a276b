package image

import (
	"testing"
	"testing/fstest"

	"github.com/stratalinux/strata/internal/imageclass"
)

func TestNameForFile(t *testing.T) {
	rel := func(names ...string) fstest.MapFS {
		m := fstest.MapFS{"usr/bin/x": {Data: []byte("x")}}
		for _, n := range names {
			m["usr/lib/extension-release.d/extension-release."+n] = &fstest.MapFile{Data: []byte("ID=_any\n")}
		}
		return m
	}
	cases := []struct {
		fsys fstest.MapFS
		file string
		want string
	}{
		{rel("hello"), "/srv/hello.raw", "hello"},                      // systemd's own name
		{rel("hello"), "/srv/hello-1.0-x86-64.raw", "hello"},           // as strata bake names it
		{rel("hello", "hello-1.0"), "/srv/hello-1.0.raw", "hello-1.0"}, // an exact release wins
		{rel("other"), "/srv/hello-1.0-x86-64.raw", ""},
		{rel("hello"), "/srv/hello-1.0-vax.raw", ""}, // not an architecture
		{rel(), "/srv/hello.raw", ""},
	}
	for _, c := range cases {
		if got := NameForFile(c.fsys, imageclass.Sysext, c.file); got != c.want {
			t.Errorf("NameForFile(%s) = %q; want %q", c.file, got, c.want)
		}
	}
	conf := fstest.MapFS{"etc/extension-release.d/extension-release.motd": {Data: []byte("ID=_any\n")}}
	if got := NameForFile(conf, imageclass.Confext, "motd-2-arm64.raw"); got != "motd" {
		t.Errorf("confext: %q", got)
	}
	if got := NameForFile(conf, imageclass.Sysext, "motd-2-arm64.raw"); got != "" {
		t.Errorf("confext release read as a sysext: %q", got)
	}
}
