package sysupdate

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

const selectTransfer = "[Source]\nType=url-file\nPath=https://example.com/\nMatchPattern=ext_@v.raw\n[Target]\nType=regular-file\nPath=/var/lib/extensions.d\nMatchPattern=ext_@v.raw\n"

func TestLoadSelected(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/sysupdate.d/50-host.transfer":      selectTransfer,
		"usr/lib/sysupdate.app.d/10-a.transfer": selectTransfer,
		"usr/lib/sysupdate.app.d/20-b.transfer": selectTransfer + "[Transfer]\nFeatures=extra\n",
		"usr/lib/sysupdate.app.d/extra.feature": "[Feature]\nDescription=Extra\n",
	})
	ids := func(d *Definitions) []string {
		var out []string
		for _, tr := range d.Transfers {
			out = append(out, tr.ID)
		}
		return out
	}

	d, err := LoadSelected(root, "", "")
	if err != nil || !slices.Equal(ids(d), []string{"50-host"}) {
		t.Fatalf("default component: %v, %v", d, err)
	}
	d, err = LoadSelected(root, "app", "")
	if err != nil || !slices.Equal(ids(d), []string{"10-a", "20-b"}) {
		t.Fatalf("component app: %v, %v", d, err)
	}
	if got := d.FeatureTransfers("extra"); !slices.Equal(got, []string{"20-b"}) {
		t.Fatalf("FeatureTransfers(extra) = %v", got)
	}
	if got := d.FeatureTransfers("none"); got == nil || len(got) != 0 {
		t.Fatalf("FeatureTransfers(none) = %#v; want an empty, non-nil list (JSON [])", got)
	}
	// --definitions= is a host directory: root does not prefix it.
	d, err = LoadSelected("/nonexistent-root", "", filepath.Join(root, "usr/lib/sysupdate.app.d"))
	if err != nil || !slices.Equal(ids(d), []string{"10-a", "20-b"}) {
		t.Fatalf("--definitions: %v, %v", d, err)
	}

	var none *NoDefinitionsError
	_, err = LoadSelected(root, "other", "")
	if !errors.As(err, &none) || err.Error() != "no transfer definitions for component 'other' found" {
		t.Fatalf("empty component: %v", err)
	}
	_, err = LoadSelected(t.TempDir(), "", "")
	if !errors.As(err, &none) || err.Error() != "no transfer definitions found" {
		t.Fatalf("no definitions: %v", err)
	}
}

func TestVerifyOverride(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, c := range []struct {
		flag string
		env  func(string) string
		want string // "nil", "true", "false" or "error"
	}{
		{"", env(), "nil"},
		{"", env("SYSTEMD_SYSUPDATE_NO_VERIFY", "1"), "false"},
		{"", env("SYSTEMD_SYSUPDATE_NO_VERIFY", "yes"), "nil"},   // only "1" counts, as in systemd
		{"yes", env("SYSTEMD_SYSUPDATE_NO_VERIFY", "1"), "true"}, // the flag wins
		{"y", env(), "true"},
		{"off", env(), "false"},
		{"maybe", env(), "error"},
	} {
		b, err := VerifyOverride(c.flag, c.env)
		got := "nil"
		switch {
		case err != nil:
			got = "error"
			if err.Error() != "--verify="+c.flag+": not a boolean" {
				t.Errorf("VerifyOverride(%q) error %q", c.flag, err)
			}
		case b != nil && *b:
			got = "true"
		case b != nil:
			got = "false"
		}
		if got != c.want {
			t.Errorf("VerifyOverride(%q) = %s; want %s", c.flag, got, c.want)
		}
	}
	if !CheckFreshness(env()) || !CheckFreshness(env("SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS", "no")) || CheckFreshness(env("SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS", "0")) {
		t.Fatal("CheckFreshness: want off only for SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS=0")
	}
}
