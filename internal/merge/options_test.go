package merge

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestResolveOptionsPrecedence(t *testing.T) {
	yes, auto := MutableYes, MutableAuto
	pol := "root=verity"
	cases := []struct {
		name  string
		flags Flags
		env   map[string]string
		cfg   ConfigFile
		mode  Mode
		warn  string
	}{
		{name: "default", mode: MutableNo},
		{name: "config", cfg: ConfigFile{Mutable: &yes}, mode: MutableYes},
		{name: "env over config", env: map[string]string{"SYSTEMD_SYSEXT_MUTABLE_MODE": "auto"}, cfg: ConfigFile{Mutable: &yes}, mode: MutableAuto},
		{name: "flag over env", flags: Flags{Mutable: "ephemeral"}, env: map[string]string{"SYSTEMD_SYSEXT_MUTABLE_MODE": "auto"}, cfg: ConfigFile{Mutable: &yes}, mode: MutableEphemeral},
		{name: "bad env ignored, config applies", env: map[string]string{"SYSTEMD_SYSEXT_MUTABLE_MODE": "bogus"}, cfg: ConfigFile{Mutable: &auto}, mode: MutableAuto,
			warn: "Failed to parse SYSTEMD_SYSEXT_MUTABLE_MODE environment variable value 'bogus'. Ignoring."},
		{name: "boolean flag", flags: Flags{Mutable: "y"}, mode: MutableYes},
	}
	for _, c := range cases {
		o, w, err := ResolveOptions(imageclass.Sysext, c.flags, envOf(c.env), c.cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if o.Mode != c.mode {
			t.Errorf("%s: mode %q, want %q", c.name, o.Mode, c.mode)
		}
		if got := strings.Join(w, "|"); got != c.warn {
			t.Errorf("%s: warnings %q, want %q", c.name, got, c.warn)
		}
	}

	// Image policy: flag over file over the class default.
	o, _, err := ResolveOptions(imageclass.Sysext, Flags{}, envOf(nil), ConfigFile{ImagePolicy: &pol})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := imagepolicy.Parse(pol)
	if !reflect.DeepEqual(o.Policy, want) {
		t.Errorf("file policy not applied: %+v", o.Policy)
	}
	o, _, _ = ResolveOptions(imageclass.Sysext, Flags{ImagePolicy: "*"}, envOf(nil), ConfigFile{ImagePolicy: &pol})
	if want, _ := imagepolicy.Parse("*"); !reflect.DeepEqual(o.Policy, want) {
		t.Errorf("flag policy not applied: %+v", o.Policy)
	}
	o, _, _ = ResolveOptions(imageclass.Confext, Flags{}, envOf(nil), ConfigFile{})
	if want, _ := imagepolicy.Parse(imageclass.Confext.DefaultImagePolicy()); !reflect.DeepEqual(o.Policy, want) {
		t.Errorf("class default policy not applied: %+v", o.Policy)
	}
}

func TestResolveOptionsEnvironment(t *testing.T) {
	env := envOf(map[string]string{
		"SYSTEMD_SYSEXT_HIERARCHIES":             "/usr:/srv",
		"SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS": "redirect_dir=on",
		"SYSTEMD_OS_RELEASE":                     "/etc/other-release",
	})
	o, _, err := ResolveOptions(imageclass.Sysext, Flags{Noexec: "yes", AlwaysRefresh: "1", Force: true}, env, ConfigFile{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.Hierarchies, []string{"/usr", "/srv"}) {
		t.Errorf("hierarchies %v", o.Hierarchies)
	}
	if o.OverlayOptions == nil || *o.OverlayOptions != "redirect_dir=on" || o.OSRelease != "/etc/other-release" {
		t.Errorf("overlay options %v, os-release %q", o.OverlayOptions, o.OSRelease)
	}
	if o.Noexec == nil || !*o.Noexec || !o.AlwaysRefresh || !o.Force {
		t.Errorf("noexec %v always-refresh %v force %v", o.Noexec, o.AlwaysRefresh, o.Force)
	}
	o, _, _ = ResolveOptions(imageclass.Confext, Flags{}, envOf(nil), ConfigFile{})
	if !reflect.DeepEqual(o.Hierarchies, []string{"/etc"}) || o.Noexec != nil || o.OverlayOptions != nil {
		t.Errorf("confext defaults: %+v", o)
	}
}

func TestResolveOptionsErrors(t *testing.T) {
	cases := []struct {
		flags Flags
		env   map[string]string
		want  string
	}{
		{flags: Flags{Mutable: "sideways"}, want: "failed to parse argument to --mutable="},
		{flags: Flags{Noexec: "maybe"}, want: `failed to parse --noexec= argument "maybe": want a boolean`},
		{flags: Flags{AlwaysRefresh: "often"}, want: `failed to parse --always-refresh= argument "often": want a boolean`},
		{flags: Flags{ImagePolicy: "usr=bogus"}, want: "--image-policy:"},
		{env: map[string]string{"SYSTEMD_SYSEXT_HIERARCHIES": "relative"}, want: "SYSTEMD_SYSEXT_HIERARCHIES"},
	}
	for _, c := range cases {
		_, _, err := ResolveOptions(imageclass.Sysext, c.flags, envOf(c.env), ConfigFile{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v %v: error %v, want %q", c.flags, c.env, err, c.want)
		}
	}
	if _, _, err := ResolveOptions(imageclass.Sysext, Flags{Mutable: "help"}, envOf(nil), ConfigFile{}); !errors.Is(err, ErrMutableHelp) {
		t.Errorf("--mutable=help: %v", err)
	}
}
