package cli

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

const peerSysext = "/usr/bin/systemd-sysext"

// snapshot describes every entry below root/h except the marker
// directory: type, mode and content or link target.
func snapshot(t *testing.T, root, h string) map[string]string {
	t.Helper()
	out := map[string]string{}
	base := filepath.Join(root, h)
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			out[p] = "error " + err.Error()
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		if strings.HasPrefix(rel, ".systemd-sysext") {
			return filepath.SkipDir
		}
		fi, _ := d.Info()
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "link " + target
		case d.IsDir():
			out[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
		default:
			b, _ := os.ReadFile(p)
			out[rel] = fmt.Sprintf("file %o %s", fi.Mode().Perm(), b)
		}
		return nil
	})
	return out
}

func diffSnapshots(a, b map[string]string) []string {
	var diffs []string
	for k, v := range a {
		if b[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: systemd %q, strata %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only strata has %q", k, v))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// peerRoot builds the same scenario for both tools: precedence, masking,
// version matching, layer order on conflicts, directories and squashfs.
func peerRoot(t *testing.T, images string) string {
	root := exttest.Root(t, exttest.DefaultOSRelease)
	ext := filepath.Join(root, "var/lib/extensions")
	os.MkdirAll(ext, 0o755)
	mk := func(dir, name, release string, files map[string]string) {
		src := filepath.Join(images, name+"-src")
		if _, err := os.Stat(src); err != nil {
			exttest.SysextTree(t, src, name, release, files)
			exttest.Squashfs(t, src, filepath.Join(images, name+".raw"))
		}
		if strings.HasSuffix(dir, ".raw") {
			b, err := os.ReadFile(filepath.Join(images, name+".raw"))
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Dir(dir), 0o755)
			os.WriteFile(dir, b, 0o644)
			return
		}
		exttest.SysextTree(t, dir, name, release, files)
	}
	mk(filepath.Join(ext, "alpha"), "alpha", "ID=debian\nVERSION_ID=12\n", map[string]string{"usr/bin/alpha": "a\n", "usr/share/conflict": "alpha\n", "opt/alpha/x": "x\n"})
	mk(filepath.Join(ext, "beta.raw"), "beta", "ID=_any\n", map[string]string{"usr/bin/beta": "#!/bin/sh\n", "usr/share/conflict": "beta\n", "usr/lib/beta/lib.so": "so\n"})
	mk(filepath.Join(ext, "gamma"), "gamma", "ID=debian\nVERSION_ID=11\n", map[string]string{"usr/bin/gamma": "g\n"})
	mk(filepath.Join(ext, "delta"), "delta", "ID=_any\n", map[string]string{"usr/bin/delta": "d\n"})
	os.MkdirAll(filepath.Join(root, "etc/extensions/delta"), 0o755) // masks delta
	mk(filepath.Join(ext, "eps"), "eps", "ID=_any\n", map[string]string{"usr/bin/eps-low": "low\n"})
	mk(filepath.Join(root, "etc/extensions/eps"), "eps", "ID=_any\n", map[string]string{"usr/bin/eps-high": "high\n"})
	mk(filepath.Join(ext, "norel"), "other-name", "ID=_any\n", map[string]string{"usr/bin/norel": "n\n"})
	mk(filepath.Join(ext, "zeta"), "zeta", "ID=fedora\nVERSION_ID=12\n", map[string]string{"usr/bin/zeta": "z\n"})
	mk(filepath.Join(ext, "arch"), "arch", "ID=_any\nARCHITECTURE=arm64\n", map[string]string{"usr/bin/arch": "z\n"})
	mk(filepath.Join(ext, "scope"), "scope", "ID=_any\nSYSEXT_SCOPE=initrd\n", map[string]string{"usr/bin/scope": "z\n"})
	return root
}

func TestSideBySideWithSystemdSysext252(t *testing.T) {
	if _, err := os.Stat(peerSysext); err != nil {
		privtest.Missing(t, "the peer %s is not installed", peerSysext)
	}
	if !privtest.InMountNS(t) {
		return
	}
	images := t.TempDir()
	rootSD := peerRoot(t, images)
	rootST := peerRoot(t, images)
	base := snapshot(t, rootST, "usr")

	sd := runBin(t, peerSysext, nil, "--root="+rootSD, "merge")
	st := strata(t, nil, "sysext", "--root="+rootST, "merge")
	if sd.code != 0 || st.code != 0 {
		t.Fatalf("merge: systemd %+v, strata %+v", sd, st)
	}
	t.Logf("systemd: %s\nstrata: %s", sd.stderr, st.stderr)
	for _, h := range []string{"usr", "opt"} {
		if d := diffSnapshots(snapshot(t, rootSD, h), snapshot(t, rootST, h)); len(d) > 0 {
			t.Errorf("merged /%s differs:\n%s", h, strings.Join(d, "\n"))
		}
		a, errA := os.ReadFile(filepath.Join(rootSD, h, ".systemd-sysext/extensions"))
		b, errB := os.ReadFile(filepath.Join(rootST, h, ".systemd-sysext/extensions"))
		// v252 lists every merged image in each hierarchy's marker; v256+
		// (and Strata) list only the images that provide the hierarchy.
		// Every image here provides /usr, so /usr must agree.
		if (h == "usr" && string(a) != string(b)) || (errA == nil) != (errB == nil) {
			t.Errorf("/%s extensions marker: systemd %q (%v), strata %q (%v)", h, a, errA, b, errB)
		}
		devA, _ := os.ReadFile(filepath.Join(rootSD, h, ".systemd-sysext/dev"))
		devB, _ := os.ReadFile(filepath.Join(rootST, h, ".systemd-sysext/dev"))
		if (len(devA) == 0) != (len(devB) == 0) || strings.Count(string(devA), ":") != strings.Count(string(devB), ":") {
			t.Errorf("/%s dev marker: systemd %q, strata %q", h, devA, devB)
		}
	}
	_, _, sdOpts, _ := exttest.MountOptions(t, filepath.Join(rootSD, "usr"))
	_, _, stOpts, _ := exttest.MountOptions(t, filepath.Join(rootST, "usr"))
	// v252 mounts without nodev; v256+ (and Strata) add it.
	if strings.Replace(stOpts, ",nodev", "", 1) != sdOpts {
		t.Errorf("mount options: systemd %s, strata %s", sdOpts, stOpts)
	}
	// Each tool recognises the other's merge as "ours" (same marker
	// protocol): systemd unmerges Strata's merge and vice versa.
	sd = runBin(t, peerSysext, nil, "--root="+rootST, "unmerge")
	st = strata(t, nil, "sysext", "--root="+rootSD, "unmerge")
	if sd.code != 0 || st.code != 0 {
		t.Fatalf("cross unmerge: systemd %+v, strata %+v", sd, st)
	}
	for _, r := range []string{rootSD, rootST} {
		if m := exttest.Mounts(t, r); len(m) != 0 {
			t.Fatalf("left mounted after unmerge: %v", m)
		}
		if d := diffSnapshots(base, snapshot(t, r, "usr")); len(d) > 0 {
			t.Errorf("unmerged /usr differs from the base:\n%s", strings.Join(d, "\n"))
		}
	}
}

// A raw image whose extension-release file has another name fails the
// whole merge in both tools, and neither leaves anything mounted.
func TestSideBySideBadRawImage(t *testing.T) {
	if _, err := os.Stat(peerSysext); err != nil {
		privtest.Missing(t, "the peer %s is not installed", peerSysext)
	}
	if !privtest.InMountNS(t) {
		return
	}
	src := exttest.SysextTree(t, filepath.Join(t.TempDir(), "src"), "othername", "ID=_any\n", map[string]string{"usr/bin/x": "x"})
	for _, tool := range []string{"systemd", "strata"} {
		root := exttest.Root(t, exttest.DefaultOSRelease)
		os.MkdirAll(filepath.Join(root, "var/lib/extensions"), 0o755)
		exttest.Squashfs(t, src, filepath.Join(root, "var/lib/extensions/misnamed.raw"))
		exttest.Write(t, root, map[string]string{"var/lib/extensions/corrupt.raw": "not an image"})
		for _, bad := range []string{"misnamed", "corrupt"} {
			other := map[string]string{"misnamed": "corrupt", "corrupt": "misnamed"}[bad]
			os.Rename(filepath.Join(root, "var/lib/extensions", other+".raw"), filepath.Join(root, other+".aside"))
			var r result
			if tool == "systemd" {
				r = runBin(t, peerSysext, nil, "--root="+root, "merge")
			} else {
				r = strata(t, nil, "sysext", "--root="+root, "merge")
			}
			if r.code != 1 || !strings.Contains(r.stderr, "Failed to read metadata for image "+bad) {
				t.Errorf("%s, %s image: %+v", tool, bad, r)
			}
			if m := exttest.Mounts(t, root); len(m) != 0 {
				t.Errorf("%s left mounts %v", tool, m)
			}
			os.Rename(filepath.Join(root, other+".aside"), filepath.Join(root, "var/lib/extensions", other+".raw"))
		}
	}
}
