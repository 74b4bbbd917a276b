package imageclass

import (
	"slices"
	"strings"
	"testing"
)

// The values are systemd's (src/sysext/sysext.c image_class_info[] and
// the documented search paths); a change here changes what hosts read.
func TestTable(t *testing.T) {
	cases := []struct {
		c                                          Class
		short, full, plural, marker, level, scope  string
		hierEnv, mutableEnv, overlayEnv            string
		releaseDir, configName, configSection      string
		hierarchies, searchDirs, initrdSearchTails []string
		policyPrefix                               string
	}{
		{
			c: Sysext, short: "sysext", full: "systemd-sysext", plural: "extensions", marker: ".systemd-sysext",
			level: "SYSEXT_LEVEL", scope: "SYSEXT_SCOPE",
			hierEnv: "SYSTEMD_SYSEXT_HIERARCHIES", mutableEnv: "SYSTEMD_SYSEXT_MUTABLE_MODE", overlayEnv: "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS",
			releaseDir: "usr/lib/extension-release.d", configName: "sysext.conf", configSection: "SysExt",
			hierarchies:       []string{"/usr", "/opt"},
			searchDirs:        []string{"/etc/extensions", "/run/extensions", "/var/lib/extensions"},
			initrdSearchTails: []string{"/.extra/sysext", "/.extra/global_sysext"},
			policyPrefix:      "root=",
		},
		{
			c: Confext, short: "confext", full: "systemd-confext", plural: "confexts", marker: ".systemd-confext",
			level: "CONFEXT_LEVEL", scope: "CONFEXT_SCOPE",
			hierEnv: "SYSTEMD_CONFEXT_HIERARCHIES", mutableEnv: "SYSTEMD_CONFEXT_MUTABLE_MODE", overlayEnv: "SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS",
			releaseDir: "etc/extension-release.d", configName: "confext.conf", configSection: "ConfExt",
			hierarchies:       []string{"/etc"},
			searchDirs:        []string{"/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/usr/lib/confexts"},
			initrdSearchTails: []string{"/.extra/confext", "/.extra/global_confext"},
			policyPrefix:      "root=",
		},
	}
	for _, tc := range cases {
		c := tc.c
		got := []string{c.String(), c.FullName(), c.Plural(), c.MarkerDir(), c.LevelKey(), c.ScopeKey(),
			c.HierarchiesEnv(), c.MutableEnv(), c.OverlayOptionsEnv(), c.ReleaseDir(), c.ConfigName(), c.ConfigSection(), c.MountSource()}
		want := []string{tc.short, tc.full, tc.plural, tc.marker, tc.level, tc.scope,
			tc.hierEnv, tc.mutableEnv, tc.overlayEnv, tc.releaseDir, tc.configName, tc.configSection, tc.short}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.short, got, want)
		}
		if g := c.ReleasePath("foo"); g != tc.releaseDir+"/extension-release.foo" {
			t.Errorf("%s ReleasePath = %q", tc.short, g)
		}
		if g := c.DefaultHierarchies(); !slices.Equal(g, tc.hierarchies) {
			t.Errorf("%s DefaultHierarchies = %q", tc.short, g)
		}
		if g := c.SearchDirs(false); !slices.Equal(g, tc.searchDirs) {
			t.Errorf("%s SearchDirs = %q", tc.short, g)
		}
		init := c.SearchDirs(true)
		if !slices.Equal(init[len(init)-2:], tc.initrdSearchTails) {
			t.Errorf("%s initrd SearchDirs = %q, want it to end in %q", tc.short, init, tc.initrdSearchTails)
		}
		if p := c.DefaultImagePolicy(); !strings.HasPrefix(p, tc.policyPrefix) || !strings.Contains(p, "verity+signed+encrypted+unprotected+absent") {
			t.Errorf("%s DefaultImagePolicy = %q", tc.short, p)
		}
		if c.Other() == c || c.Other().Other() != c {
			t.Errorf("%s Other = %s", tc.short, c.Other())
		}
	}
	if !strings.Contains(Sysext.DefaultImagePolicy(), "usr=") || strings.Contains(Confext.DefaultImagePolicy(), "usr=") {
		t.Errorf("only the sysext policy names usr=: %q / %q", Sysext.DefaultImagePolicy(), Confext.DefaultImagePolicy())
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Class{"sysext": Sysext, "systemd-sysext": Sysext, "confext": Confext, "systemd-confext": Confext} {
		if c, err := Parse(in); err != nil || c != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, c, err, want)
		}
	}
	for _, in := range []string{"", "Sysext", "portable", "sysexts"} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), "want sysext or confext") {
			t.Errorf("Parse(%q) error = %v", in, err)
		}
	}
}

// Returned slices are copies: a caller that appends or edits must not
// change what the next caller reads.
func TestSlicesAreCopies(t *testing.T) {
	d := Sysext.SearchDirs(false)
	d[0] = "/tmp/evil"
	h := Confext.DefaultHierarchies()
	h[0] = "/tmp/evil"
	if Sysext.SearchDirs(false)[0] != "/etc/extensions" || Confext.DefaultHierarchies()[0] != "/etc" {
		t.Fatal("the class table was changed through a returned slice")
	}
}
