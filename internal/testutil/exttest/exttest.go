// Package exttest builds scratch roots and real extension images for
// tests: directory trees, squashfs, erofs and ext4 images made by the
// filesystems' own tools, and GPT disk images.
package exttest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// DefaultOSRelease is the scratch root's os-release.
const DefaultOSRelease = "ID=debian\nVERSION_ID=12\nPRETTY_NAME=\"Scratch 12\"\n"

// Root makes a scratch root: os-release, a few host files in /usr and
// /opt, and an /etc with a host file.
func Root(t testing.TB, osRelease string) string {
	t.Helper()
	root := t.TempDir()
	Write(t, root, map[string]string{
		"usr/lib/os-release":   osRelease,
		"usr/bin/host-tool":    "#!/bin/sh\necho host\n",
		"usr/share/host/file":  "host\n",
		"opt/host/file":        "host opt\n",
		"etc/host.conf.strata": "host etc\n",
	})
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	return root
}

// Write creates files (and their directories) below dir.
func Write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// SysextTree makes a sysext directory tree for name with the given
// extension-release content and files.
func SysextTree(t testing.TB, dir, name, release string, files map[string]string) string {
	t.Helper()
	all := map[string]string{"usr/lib/extension-release.d/extension-release." + name: release}
	for k, v := range files {
		all[k] = v
	}
	Write(t, dir, all)
	return dir
}

// ConfextTree makes a confext directory tree.
func ConfextTree(t testing.TB, dir, name, release string, files map[string]string) string {
	t.Helper()
	all := map[string]string{"etc/extension-release.d/extension-release." + name: release}
	for k, v := range files {
		all[k] = v
	}
	Write(t, dir, all)
	return dir
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	privtest.RequireTools(t, name)
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Squashfs packs src into out with mksquashfs, as the bakery does.
func Squashfs(t testing.TB, src, out string) string {
	t.Helper()
	run(t, "mksquashfs", src, out, "-all-root", "-noappend", "-quiet", "-no-progress")
	return out
}

// Erofs packs src into out with mkfs.erofs.
func Erofs(t testing.TB, src, out string) string {
	t.Helper()
	run(t, "mkfs.erofs", "--all-root", "-U", "00000000-0000-0000-0000-000000000000", out, src)
	return out
}

// Ext4 packs src into a 32 MiB ext4 image.
func Ext4(t testing.TB, src, out string) string {
	t.Helper()
	if err := os.Truncate(out, 32<<20); err != nil {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.Truncate(out, 32<<20); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", src, out)
	return out
}

// RootX86_64 is the DPS partition type of an x86-64 root partition.
const RootX86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"

// GPT wraps the filesystem image fsImage into a GPT disk image with one
// partition of the given type at 1 MiB.
func GPT(t testing.TB, fsImage, out, partType string) string {
	t.Helper()
	fi, err := os.Stat(fsImage)
	if err != nil {
		t.Fatal(err)
	}
	sectors := (fi.Size() + 511) / 512
	total := 2048 + sectors + 2048
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, total*512); err != nil {
		t.Fatal(err)
	}
	privtest.RequireTools(t, "sfdisk")
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", out)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=2048, size=%d, type=%s, name=root\n", sectors, partType))
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, o)
	}
	data, err := os.ReadFile(fsImage)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(out, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 2048*512); err != nil {
		t.Fatal(err)
	}
	return out
}

// Mounts lists the mount points below prefix in this mount namespace.
func Mounts(t testing.TB, prefix string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], prefix) {
			out = append(out, fields[4])
		}
	}
	sort.Strings(out)
	return out
}

// MountOptions returns the super options and the mount options of the
// topmost mount at target (from /proc/self/mountinfo).
func MountOptions(t testing.TB, target string) (fstype, source, mountOpts, superOpts string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		p := strings.Fields(post)
		if len(f) > 5 && f[4] == target && len(p) >= 3 {
			fstype, source, mountOpts, superOpts = p[0], p[1], f[5], p[2]
		}
	}
	return
}

// LoopsBackedBy lists loop devices whose backing file is under dir.
func LoopsBackedBy(t testing.TB, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir("/sys/block")
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile("/sys/block/" + e.Name() + "/loop/backing_file")
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
			out = append(out, e.Name())
		}
	}
	return out
}
