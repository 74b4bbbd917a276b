package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/testutil/exttest"
)

// TestBooleanFlagValues checks that every flag taking a boolean value
// reads it as systemd's parse_boolean does (y, yes, 1, on, TRUE, …) and
// that garbage fails with one line naming the flag and the value.
func TestBooleanFlagValues(t *testing.T) {
	yes := []string{"y", "yes", "1", "on", "TRUE"}
	no := []string{"n", "NO", "0", "off", "False"}

	t.Run("ext add --verify", func(t *testing.T) {
		arch := sdparse.NativeArchitecture()
		r := newServedRepo(t)
		img := filepath.Join(t.TempDir(), "hello-1-"+arch+".raw")
		os.WriteFile(img, []byte("image 1"), 0o644)
		r.publish(t, img)
		for _, v := range append(yes, no...) {
			root := t.TempDir()
			r.installKey(t, root)
			res := strata(t, nil, "ext", "add", "hello", "--repo", r.url, "--root", root, "--no-refresh", "--verify="+v)
			if res.code != 0 {
				t.Fatalf("ext add --verify=%s: %+v", v, res)
			}
			tr, err := os.ReadFile(filepath.Join(root, "etc/sysupdate.hello.d/hello.transfer"))
			want := "Verify=yes"
			if sliceHas(no, v) {
				want = "Verify=no"
			}
			if err != nil || !strings.Contains(string(tr), want) {
				t.Fatalf("ext add --verify=%s wrote %q (%v), want %s", v, tr, err, want)
			}
		}
		res := strata(t, nil, "ext", "add", "hello", "--repo", r.url, "--root", t.TempDir(), "--no-refresh", "--verify=maybe")
		wantOneLine(t, res, "--verify=maybe: not a boolean")
	})

	t.Run("sysupdate --verify", func(t *testing.T) {
		root := t.TempDir()
		exttest.Write(t, root, map[string]string{"etc/sysupdate.d/a.transfer": "[Source]\nType=url-file\nPath=http://127.0.0.1:1/\nMatchPattern=a_@v.raw\n[Target]\nType=regular-file\nPath=/opt\nMatchPattern=a_@v.raw\n"})
		for _, v := range append(yes, no...) {
			if res := strata(t, nil, "sysupdate", "--root", root, "--offline", "--verify="+v, "list"); res.code != 0 {
				t.Fatalf("sysupdate --verify=%s: %+v", v, res)
			}
		}
		wantOneLine(t, strata(t, nil, "sysupdate", "--root", root, "--offline", "--verify=maybe", "list"), "--verify=maybe: not a boolean")
		// --sync= changes nothing (Strata always syncs), but systemd still
		// refuses a value that is not a boolean.
		for _, v := range append(yes, no...) {
			if res := strata(t, nil, "sysupdate", "--root", root, "--offline", "--sync="+v, "list"); res.code != 0 {
				t.Fatalf("sysupdate --sync=%s: %+v", v, res)
			}
		}
		wantOneLine(t, strata(t, nil, "sysupdate", "--root", root, "--offline", "--sync=maybe", "list"), "--sync=maybe: not a boolean")
	})

	t.Run("sysext --noexec --always-refresh", func(t *testing.T) {
		root := scratch(t)
		for _, flag := range []string{"--noexec", "--always-refresh"} {
			for _, v := range append(yes, no...) {
				if res := strata(t, nil, "sysext", "--root", root, flag+"="+v, "list"); res.code != 0 {
					t.Fatalf("sysext %s=%s: %+v", flag, v, res)
				}
			}
			wantOneLine(t, strata(t, nil, "sysext", "--root", root, flag+"=maybe", "list"), flag+"= argument \"maybe\"")
		}
	})

	t.Run("bake --reload-manager", func(t *testing.T) {
		src := t.TempDir()
		writeTree(t, src, map[string]string{"usr/bin/hello": "x"})
		rel := func(v string) (string, result) {
			out := t.TempDir()
			res := strata(t, nil, "bake", src, "--name", "hello", "--version", "1", "--format", "dir", "-o", out, "--reload-manager="+v)
			b, _ := os.ReadFile(filepath.Join(out, "hello-1-"+hostArchForTest(), "usr/lib/extension-release.d/extension-release.hello"))
			return string(b), res
		}
		for _, v := range yes {
			if b, res := rel(v); res.code != 0 || !strings.Contains(b, "EXTENSION_RELOAD_MANAGER=1") {
				t.Fatalf("bake --reload-manager=%s: %+v, release %q", v, res, b)
			}
		}
		writeTree(t, src, map[string]string{"usr/lib/systemd/system/hello.service": "[Service]\n"})
		for _, v := range no {
			if b, res := rel(v); res.code != 0 || strings.Contains(b, "EXTENSION_RELOAD_MANAGER") {
				t.Fatalf("bake --reload-manager=%s: %+v, release %q", v, res, b)
			}
		}
		_, res := rel("maybe")
		wantOneLine(t, res, "--reload-manager")
	})
}

func sliceHas(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// wantOneLine asserts a failure with exit code 1 and a one-line message.
func wantOneLine(t *testing.T, res result, want string) {
	t.Helper()
	msg := strings.TrimSpace(res.stderr)
	if res.code != 1 || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Fatalf("want exit 1 and one line with %q, got %+v", want, res)
	}
}
