package register

import "testing"

func TestWhereDefaults(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	withRoot := env(map[string]string{RootEnv: "/srv/flakes", "USER": "alice"})
	none := env(nil)
	cases := []struct {
		w      Where
		getenv func(string) string
		root   string
		images string
	}{
		{Where{Root: "/mnt"}, withRoot, "/mnt", "/mnt/var/lib/firecracker/images"}, // the flag wins
		{Where{}, withRoot, "/srv/flakes", "/srv/flakes/var/lib/firecracker/images"},
		{Where{}, none, "", "/var/lib/firecracker/images"},
		{Where{User: true}, withRoot, "/srv/flakes", "/home/alice/.config/flakes/firecracker/images"},
	}
	for _, c := range cases {
		reg := c.w.Registry(c.getenv)
		if reg.Root != c.root || reg.User != c.w.User {
			t.Errorf("%+v.Registry() = %+v; want root %q", c.w, reg, c.root)
		}
		if got := c.w.VMImagesDir(c.getenv, "/home/alice"); got != c.images {
			t.Errorf("%+v.VMImagesDir() = %q; want %q", c.w, got, c.images)
		}
	}
	for _, c := range []struct {
		euid   int
		getenv func(string) string
		want   string
	}{{0, withRoot, "root"}, {1000, withRoot, "alice"}, {1000, none, "1000"}} {
		if got := CallerName(c.euid, c.getenv); got != c.want {
			t.Errorf("CallerName(%d) = %q; want %q", c.euid, got, c.want)
		}
	}
}
