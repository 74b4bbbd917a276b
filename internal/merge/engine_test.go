package merge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"golang.org/x/sys/unix"
)

const anyRelease = "ID=_any\n"

func newEngine(t *testing.T, root string, c imageclass.Class) *Engine {
	return &Engine{Class: c, Root: root, Hierarchies: c.DefaultHierarchies(), Mode: MutableNo,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// verdicts assesses the engine's images and indexes the verdicts by name.
func verdicts(t *testing.T, e *Engine) map[string]Verdict {
	t.Helper()
	a, err := e.Assess()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Verdict{}
	for _, v := range a.Verdicts {
		got[v.Name] = v
	}
	return got
}

func randomText(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte('!' + x%90)
	}
	return string(b)
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		t.Fatalf("%s exists, want it absent", p)
	}
}

// checkClean asserts nothing of ours is mounted under root and no loop
// device backed by a file under dir stays attached.
func checkClean(t *testing.T, root, dir string) {
	t.Helper()
	if m := exttest.Mounts(t, root); len(m) > 0 {
		t.Fatalf("mounts left under %s: %v", root, m)
	}
	if l := exttest.LoopsBackedBy(t, dir); len(l) > 0 {
		t.Fatalf("loop devices left attached: %v", l)
	}
	if m := exttest.Mounts(t, "/run/strata"); len(m) > 0 {
		t.Fatalf("staging mounts leaked: %v", m)
	}
}

func TestMergeFormats(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := exttest.Root(t, exttest.DefaultOSRelease)
	work := t.TempDir()
	ext := filepath.Join(root, "var/lib/extensions")
	mkTree := func(name string) string {
		return exttest.SysextTree(t, filepath.Join(work, "src-"+name), name, anyRelease, map[string]string{
			"usr/bin/" + name:       "#!/bin/sh\necho " + name + "\n",
			"opt/" + name + "/data": name,
		})
	}
	os.MkdirAll(ext, 0o755)
	// A directory, squashfs, erofs, ext4 and a GPT image with a squashfs root partition.
	exttest.SysextTree(t, filepath.Join(ext, "dirext"), "dirext", anyRelease, map[string]string{"usr/bin/dirext": "#!/bin/sh\n"})
	exttest.Squashfs(t, mkTree("sq"), filepath.Join(ext, "sq.raw"))
	exttest.Erofs(t, mkTree("ero"), filepath.Join(ext, "ero.raw"))
	exttest.Ext4(t, mkTree("efour"), filepath.Join(ext, "efour.raw"))
	gsq := exttest.Squashfs(t, mkTree("gpt"), filepath.Join(work, "gpt.squashfs"))
	exttest.GPT(t, gsq, filepath.Join(ext, "gpt.raw"), exttest.RootX86_64)

	e := newEngine(t, root, imageclass.Sysext)
	res, err := e.Merge(context.Background())
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	if got := strings.Join(res.Plan.Extensions, ","); got != "dirext,efour,ero,gpt,sq" {
		t.Fatalf("merged %s", got)
	}
	for _, n := range []string{"dirext", "sq", "ero", "efour", "gpt"} {
		if _, err := os.Stat(filepath.Join(root, "usr/bin", n)); err != nil {
			t.Errorf("%s not visible in merged /usr: %v", n, err)
		}
	}
	if read(t, filepath.Join(root, "opt/ero/data")) != "ero" {
		t.Error("erofs /opt content wrong")
	}
	if read(t, filepath.Join(root, "usr/share/host/file")) != "host\n" {
		t.Error("host /usr content hidden")
	}
	if got := read(t, filepath.Join(root, "usr/.systemd-sysext/extensions")); got != "dirext\nefour\nero\ngpt\nsq\n" {
		t.Errorf("extensions marker %q", got)
	}
	var hostSt unix.Stat_t
	unix.Stat(root, &hostSt)
	if got := read(t, filepath.Join(root, "usr/.systemd-sysext/backing")); got != fmt.Sprintf("%d:%d\n", unix.Major(hostSt.Dev), unix.Minor(hostSt.Dev)) && unix.Major(hostSt.Dev) != 0 {
		t.Errorf("backing marker %q", got)
	}
	if got := read(t, filepath.Join(root, "opt/.systemd-sysext/extensions")); got != "efour\nero\ngpt\nsq\n" {
		t.Errorf("/opt extensions marker %q (dirext provides no /opt)", got)
	}
	fstype, source, mopts, sopts := exttest.MountOptions(t, filepath.Join(root, "usr"))
	if fstype != "overlay" || source != "sysext" || !strings.HasPrefix(mopts, "ro,nodev") || strings.Contains(mopts, "nosuid") {
		t.Errorf("mount: %s %s %s", fstype, source, mopts)
	}
	lower := sopts[strings.Index(sopts, "lowerdir="):]
	if !strings.Contains(lower, "/meta/usr:") || !strings.HasSuffix(strings.Split(lower, ",")[0], ":"+filepath.Join(root, "usr")) {
		t.Errorf("layer order: %s", lower)
	}
	if strings.Index(lower, "extensions/sq/usr") > strings.Index(lower, "extensions/dirext/usr") {
		t.Errorf("highest name must be the top layer: %s", lower)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/newfile"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("merged /usr writable: %v", err)
	}
	states, err := e.Status()
	if err != nil || len(states) != 2 || !states[1].Ours || len(states[1].Extensions) != 5 {
		t.Fatalf("status %+v %v", states, err)
	}
	if _, err := e.Merge(context.Background()); !errors.Is(err, ErrAlreadyMerged) {
		t.Fatalf("second merge: %v", err)
	}
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(root, "usr/bin/sq"))
	mustNotExist(t, filepath.Join(root, "usr/.systemd-sysext"))
	checkClean(t, root, root)
}

func TestMergeCompatibilityAndMasking(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := exttest.Root(t, "ID=debian\nVERSION_ID=12\nID_LIKE=\"ubuntu-ish\"\n")
	ext := filepath.Join(root, "var/lib/extensions")
	add := func(name, rel string) {
		exttest.SysextTree(t, filepath.Join(ext, name), name, rel, map[string]string{"usr/bin/" + name: "x"})
	}
	add("good", "ID=debian\nVERSION_ID=12\n")
	add("like", "ID=ubuntu-ish\nVERSION_ID=12\n")
	add("wrongver", "ID=debian\nVERSION_ID=11\n")
	add("wrongid", "ID=fedora\n")
	add("wrongarch", "ID=_any\nARCHITECTURE=s390x\n")
	add("initrdonly", "ID=_any\nSYSEXT_SCOPE=initrd\n")
	add("masked", "ID=_any\n")
	os.MkdirAll(filepath.Join(root, "etc/extensions/masked"), 0o755)
	// A release file under another name is accepted only with the xattr.
	exttest.SysextTree(t, filepath.Join(ext, "renamed"), "othername", "ID=_any\n", map[string]string{"usr/bin/renamed": "x"})
	exttest.SysextTree(t, filepath.Join(ext, "renamed2"), "othername2", "ID=_any\n", map[string]string{"usr/bin/renamed2": "x"})
	if err := unix.Setxattr(filepath.Join(ext, "renamed2/usr/lib/extension-release.d/extension-release.othername2"), "user.extension-release.strict", []byte("0"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	// name_1.2 accepts extension-release.name
	exttest.SysextTree(t, filepath.Join(ext, "cut_1.2"), "cut", "ID=_any\n", map[string]string{"usr/bin/cut": "x"})

	e := newEngine(t, root, imageclass.Sysext)
	got := verdicts(t, e)
	for name, want := range map[string]Status{
		"good": StatusReady, "like": StatusReady, "renamed2": StatusReady, "cut_1.2": StatusReady,
		"wrongver": StatusIncompatible, "wrongid": StatusIncompatible, "wrongarch": StatusIncompatible,
		"initrdonly": StatusIncompatible, "masked": StatusNoRelease, "renamed": StatusNoRelease,
	} {
		if got[name].Status != want {
			t.Errorf("%s: %s (%s), want %s", name, got[name].Status, got[name].Reason, want)
		}
	}
	if !strings.Contains(got["wrongver"].Reason, "11") || !strings.Contains(got["wrongver"].Reason, "12") {
		t.Errorf("reason should name both versions: %q", got["wrongver"].Reason)
	}
	res, err := e.Merge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Plan.Extensions, ","); got != "cut_1.2,good,like,renamed2" {
		t.Fatalf("merged %s", got)
	}
	mustNotExist(t, filepath.Join(root, "usr/bin/masked"))
	mustNotExist(t, filepath.Join(root, "usr/bin/wrongver"))
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	// --force merges everything with release data or not.
	e.Force = true
	res, err = e.Merge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Extensions) != 10 {
		t.Errorf("force merged %v", res.Plan.Extensions)
	}
	e.Unmerge(context.Background())
	checkClean(t, root, root)
}

func TestMergeFailuresLeaveHierarchiesUntouched(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := exttest.Root(t, exttest.DefaultOSRelease)
	ext := filepath.Join(root, "var/lib/extensions")
	exttest.SysextTree(t, filepath.Join(ext, "a"), "a", anyRelease, map[string]string{"usr/bin/a": "x"})
	e := newEngine(t, root, imageclass.Sysext)

	// A corrupt raw image: merge fails, nothing mounted.
	exttest.Write(t, ext, map[string]string{"corrupt.raw": strings.Repeat("garbage", 1000)})
	_, err := e.Merge(context.Background())
	if err == nil || !strings.Contains(err.Error(), "corrupt.raw") {
		t.Fatalf("corrupt image: %v", err)
	}
	checkClean(t, root, root)
	os.Remove(filepath.Join(ext, "corrupt.raw"))

	// A truncated squashfs.
	sq := exttest.Squashfs(t, exttest.SysextTree(t, filepath.Join(t.TempDir(), "t"), "trunc", anyRelease, map[string]string{"usr/bin/t": randomText(200000)}), filepath.Join(t.TempDir(), "trunc.raw"))
	data, _ := os.ReadFile(sq)
	os.WriteFile(filepath.Join(ext, "trunc.raw"), data[:len(data)/2], 0o644)
	if _, err := e.Merge(context.Background()); err == nil || !strings.Contains(err.Error(), "trunc.raw") {
		t.Fatalf("truncated image: %v", err)
	}
	checkClean(t, root, root)
	os.Remove(filepath.Join(ext, "trunc.raw"))

	// A directory sysext carrying usr/lib/os-release fails the whole run.
	exttest.SysextTree(t, filepath.Join(ext, "os"), "os", anyRelease, map[string]string{"usr/lib/os-release": "ID=x\n"})
	if _, err := e.Merge(context.Background()); err == nil || !strings.Contains(err.Error(), "os-release") {
		t.Fatalf("os-release in sysext: %v", err)
	}
	checkClean(t, root, root)
	os.RemoveAll(filepath.Join(ext, "os"))

	// A bad overlay option fails after images were mounted: still clean.
	bad := "no_such_option=1"
	e.OverlayOptions = &bad
	if _, err := e.Merge(context.Background()); err == nil {
		t.Fatal("bad overlay option accepted")
	}
	checkClean(t, root, root)

	// A refresh that fails leaves the previous merge in place.
	e.OverlayOptions = nil
	if _, err := e.Merge(context.Background()); err != nil {
		t.Fatal(err)
	}
	exttest.SysextTree(t, filepath.Join(ext, "b"), "b", anyRelease, map[string]string{"usr/bin/b": "x"})
	e.OverlayOptions = &bad
	if _, err := e.Refresh(context.Background()); err == nil {
		t.Fatal("bad refresh succeeded")
	}
	if got := read(t, filepath.Join(root, "usr/.systemd-sysext/extensions")); got != "a\n" {
		t.Fatalf("after failed refresh: %q", got)
	}
	if n := len(exttest.Mounts(t, filepath.Join(root, "usr"))); n != 1 {
		t.Fatalf("%d mounts on /usr after failed refresh", n)
	}
	e.OverlayOptions = nil
	e.Unmerge(context.Background())
	checkClean(t, root, root)
}

func TestRefreshIsGapFree(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := exttest.Root(t, exttest.DefaultOSRelease)
	ext := filepath.Join(root, "var/lib/extensions")
	os.MkdirAll(ext, 0o755)
	exttest.Squashfs(t, exttest.SysextTree(t, filepath.Join(t.TempDir(), "a"), "a", anyRelease, map[string]string{"usr/bin/a": "a"}), filepath.Join(ext, "a.raw"))
	e := newEngine(t, root, imageclass.Sysext)
	if _, err := e.Merge(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Refresh without change is skipped.
	res, err := e.Refresh(context.Background())
	if err != nil || !res.Skipped {
		t.Fatalf("unchanged refresh: skipped=%v err=%v", res.Skipped, err)
	}
	// Watch /usr/bin/a continuously while refreshing with a new image.
	stop := make(chan struct{})
	missing := make(chan int, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				missing <- n
				return
			default:
			}
			if _, err := os.Stat(filepath.Join(root, "usr/bin/a")); err != nil {
				n++
			}
		}
	}()
	exttest.Squashfs(t, exttest.SysextTree(t, filepath.Join(t.TempDir(), "b"), "b", anyRelease, map[string]string{"usr/bin/b": "b"}), filepath.Join(ext, "b.raw"))
	for i := 0; i < 5; i++ {
		e.AlwaysRefresh = true
		if _, err := e.Refresh(context.Background()); err != nil {
			close(stop)
			t.Fatal(err)
		}
	}
	close(stop)
	if n := <-missing; n > 0 {
		t.Fatalf("/usr/bin/a was missing %d times during refresh", n)
	}
	if got := read(t, filepath.Join(root, "usr/.systemd-sysext/extensions")); got != "a\nb\n" {
		t.Fatalf("after refresh: %q", got)
	}
	if n := len(exttest.Mounts(t, filepath.Join(root, "usr"))); n != 1 {
		t.Fatalf("%d stacked mounts on /usr after refresh, want 1", n)
	}
	// Removing every image: refresh unmerges.
	os.Remove(filepath.Join(ext, "a.raw"))
	os.Remove(filepath.Join(ext, "b.raw"))
	if _, err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkClean(t, root, root)
}

func TestConfextAndMutableModes(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	t.Run("confext", func(t *testing.T) {
		root := exttest.Root(t, exttest.DefaultOSRelease)
		exttest.ConfextTree(t, filepath.Join(root, "var/lib/confexts/cfg"), "cfg", anyRelease, map[string]string{"etc/cfg.conf": "cfg\n"})
		e := newEngine(t, root, imageclass.Confext)
		if _, err := e.Merge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if read(t, filepath.Join(root, "etc/cfg.conf")) != "cfg\n" || read(t, filepath.Join(root, "etc/host.conf.strata")) != "host etc\n" {
			t.Fatal("confext content")
		}
		_, source, mopts, _ := exttest.MountOptions(t, filepath.Join(root, "etc"))
		if source != "confext" || !strings.Contains(mopts, "nosuid") || !strings.Contains(mopts, "noexec") {
			t.Fatalf("confext mount %s %s", source, mopts)
		}
		if read(t, filepath.Join(root, "etc/.systemd-confext/confexts")) != "cfg\n" {
			t.Fatal("confexts marker")
		}
		e.Unmerge(context.Background())
		checkClean(t, root, root)
	})
	setup := func(t *testing.T) (string, *Engine) {
		root := exttest.Root(t, exttest.DefaultOSRelease)
		exttest.SysextTree(t, filepath.Join(root, "var/lib/extensions/e"), "e", anyRelease, map[string]string{"opt/e/file": "e"})
		return root, newEngine(t, root, imageclass.Sysext)
	}
	writable := func(root string) bool {
		return os.WriteFile(filepath.Join(root, "opt/new"), []byte("n"), 0o644) == nil
	}
	t.Run("no", func(t *testing.T) {
		root, e := setup(t)
		os.MkdirAll(filepath.Join(root, "var/lib/extensions.mutable/opt"), 0o755)
		e.Merge(context.Background())
		if writable(root) {
			t.Fatal("writable with mode no")
		}
		e.Unmerge(context.Background())
		checkClean(t, root, root)
	})
	t.Run("auto", func(t *testing.T) {
		root, e := setup(t)
		e.Mode = MutableAuto
		e.Merge(context.Background())
		if writable(root) {
			t.Fatal("auto without mutable dir must be read-only")
		}
		e.Unmerge(context.Background())
		os.MkdirAll(filepath.Join(root, "var/lib/extensions.mutable/opt"), 0o755)
		if _, err := e.Merge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !writable(root) {
			t.Fatal("auto with mutable dir must be writable")
		}
		if read(t, filepath.Join(root, "var/lib/extensions.mutable/opt/new")) != "n" {
			t.Fatal("write did not land in the mutable dir")
		}
		wd := read(t, filepath.Join(root, "opt/.systemd-sysext/work_dir"))
		if wd != "var/lib/extensions.mutable/.systemd-opt-workdir\n" {
			t.Fatalf("work_dir %q", wd)
		}
		_, _, mopts, sopts := exttest.MountOptions(t, filepath.Join(root, "opt"))
		if !strings.Contains(sopts, "redirect_dir=on") || !strings.Contains(mopts, "noatime") || !strings.HasPrefix(mopts, "rw") {
			t.Errorf("mutable overlay options: %s / %s", mopts, sopts)
		}
		e.Unmerge(context.Background())
		mustNotExist(t, filepath.Join(root, "opt/new"))
		mustNotExist(t, filepath.Join(root, "var/lib/extensions.mutable/.systemd-opt-workdir"))
		checkClean(t, root, root)
	})
	t.Run("yes", func(t *testing.T) {
		root, e := setup(t)
		e.Mode = MutableYes
		if _, err := e.Merge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !writable(root) {
			t.Fatal("yes must be writable")
		}
		for _, d := range []string{"opt", "usr"} {
			if _, err := os.Stat(filepath.Join(root, "var/lib/extensions.mutable", d)); err != nil {
				t.Errorf("mutable dir for %s not created", d)
			}
		}
		e.Unmerge(context.Background())
		checkClean(t, root, root)
		// A mode mismatch fails the merge.
		os.Chmod(filepath.Join(root, "var/lib/extensions.mutable/opt"), 0o700)
		if _, err := e.Merge(context.Background()); err == nil || !strings.Contains(err.Error(), "mode") {
			t.Fatalf("mode mismatch: %v", err)
		}
		checkClean(t, root, root)
	})
	t.Run("import", func(t *testing.T) {
		root, e := setup(t)
		exttest.Write(t, filepath.Join(root, "var/lib/extensions.mutable"), map[string]string{"opt/imported": "u"})
		e.Mode = MutableImport
		e.Merge(context.Background())
		if read(t, filepath.Join(root, "opt/imported")) != "u" || writable(root) {
			t.Fatal("import must show the mutable dir read-only")
		}
		e.Unmerge(context.Background())
		// Import of the hierarchy itself is refused.
		os.RemoveAll(filepath.Join(root, "var/lib/extensions.mutable/opt"))
		os.Symlink("/opt", filepath.Join(root, "var/lib/extensions.mutable/opt"))
		if _, err := e.Merge(context.Background()); err == nil {
			t.Fatal("self import accepted")
		}
		checkClean(t, root, root)
	})
	t.Run("ephemeral", func(t *testing.T) {
		root, e := setup(t)
		e.Mode = MutableEphemeral
		if _, err := e.Merge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !writable(root) {
			t.Fatal("ephemeral must be writable")
		}
		mustNotExist(t, filepath.Join(root, "var/lib/extensions.mutable/opt/new"))
		mustNotExist(t, filepath.Join(root, "opt/.systemd-sysext/work_dir"))
		e.Unmerge(context.Background())
		mustNotExist(t, filepath.Join(root, "opt/new"))
		checkClean(t, root, root)
	})
	t.Run("ephemeral-import", func(t *testing.T) {
		root, e := setup(t)
		exttest.Write(t, filepath.Join(root, "var/lib/extensions.mutable"), map[string]string{"opt/imported": "u"})
		e.Mode = MutableEphemeralImport
		if _, err := e.Merge(context.Background()); err != nil {
			t.Fatal(err)
		}
		if read(t, filepath.Join(root, "opt/imported")) != "u" || !writable(root) {
			t.Fatal("ephemeral-import")
		}
		mustNotExist(t, filepath.Join(root, "var/lib/extensions.mutable/opt/new"))
		e.Unmerge(context.Background())
		checkClean(t, root, root)
	})
}

func TestConfextEtcAsWritableLayer(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := exttest.Root(t, exttest.DefaultOSRelease)
	exttest.ConfextTree(t, filepath.Join(root, "var/lib/confexts/cfg"), "cfg", anyRelease, map[string]string{"etc/cfg.conf": "cfg\n"})
	os.MkdirAll(filepath.Join(root, "var/lib/extensions.mutable"), 0o755)
	// The roadmap's mode: /etc itself is the writable layer.
	if err := os.Symlink("/etc", filepath.Join(root, "var/lib/extensions.mutable/etc")); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, root, imageclass.Confext)
	e.Mode = MutableAuto
	res, err := e.Merge(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Plan.Hierarchies[0].Layers {
		if l.Kind == LayerHost {
			t.Fatalf("/etc must be the upper layer, not a lower one: %+v", res.Plan.Hierarchies[0].Layers)
		}
	}
	if read(t, filepath.Join(root, "etc/cfg.conf")) != "cfg\n" {
		t.Fatal("confext file not visible")
	}
	if err := os.WriteFile(filepath.Join(root, "etc/admin.conf"), []byte("admin\n"), 0o644); err != nil {
		t.Fatalf("/etc not writable: %v", err)
	}
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(root, "etc/admin.conf")) != "admin\n" {
		t.Fatal("the write did not persist in the real /etc")
	}
	mustNotExist(t, filepath.Join(root, "etc/cfg.conf"))
	mustNotExist(t, filepath.Join(root, ".systemd-etc-workdir"))
	checkClean(t, root, root)
}

func TestHostileImages(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := exttest.Root(t, exttest.DefaultOSRelease)
	ext := filepath.Join(root, "var/lib/extensions")
	// A release file that is a symlink escaping the image resolves inside
	// the image: the host's files are never read as release data.
	exttest.Write(t, filepath.Join(ext, "esc"), map[string]string{"usr/bin/esc": "x"})
	os.MkdirAll(filepath.Join(ext, "esc/usr/lib/extension-release.d"), 0o755)
	os.Symlink("../../../../../../../../etc/os-release", filepath.Join(ext, "esc/usr/lib/extension-release.d/extension-release.esc"))
	// Garbage lines in a release file are skipped, the valid keys count.
	exttest.SysextTree(t, filepath.Join(ext, "garbage"), "garbage", "this is not a key\n=novalue\nID=_any\n", map[string]string{"usr/bin/garbage": "x"})
	// The initrd scope: an extension without SYSEXT_SCOPE=initrd does not
	// apply in an initrd.
	e := newEngine(t, root, imageclass.Sysext)
	got := verdicts(t, e)
	if got["esc"].Use || got["esc"].Status != StatusNoRelease {
		t.Errorf("escaping release link: %+v", got["esc"])
	}
	if !got["garbage"].Use {
		t.Errorf("garbage lines: %+v", got["garbage"])
	}
	// Invalid UTF-8 is an error that names the image and the line.
	exttest.SysextTree(t, filepath.Join(ext, "badutf"), "badutf", "\xff\xfe=1\nID=_any\n", map[string]string{"usr/bin/badutf": "x"})
	_, err := e.Merge(context.Background())
	if err == nil || !strings.Contains(err.Error(), "badutf") || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8 release: %v", err)
	}
	checkClean(t, root, root)
	os.RemoveAll(filepath.Join(ext, "badutf"))
	exttest.Write(t, root, map[string]string{"etc/initrd-release": "ID=debian\n"})
	for _, v := range verdicts(t, e) {
		if v.Use {
			t.Errorf("%s used in the initrd without SYSEXT_SCOPE=initrd", v.Name)
		}
	}
}

func TestSubmountsAreCarried(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := exttest.Root(t, exttest.DefaultOSRelease)
	exttest.SysextTree(t, filepath.Join(root, "var/lib/extensions/a"), "a", anyRelease, map[string]string{"usr/bin/a": "a"})
	sub := filepath.Join(root, "usr/share/extra")
	os.MkdirAll(sub, 0o755)
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sub, "file"), []byte("sub\n"), 0o644)
	e := newEngine(t, root, imageclass.Sysext)
	if _, err := e.Merge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(sub, "file")) != "sub\n" {
		t.Fatal("submount not visible in the merged /usr")
	}
	// Still the same tmpfs: a write shows through after unmerge.
	os.WriteFile(filepath.Join(sub, "written-while-merged"), []byte("w"), 0o644)
	exttest.SysextTree(t, filepath.Join(root, "var/lib/extensions/b"), "b", anyRelease, map[string]string{"usr/bin/b": "b"})
	if _, err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(sub, "file")) != "sub\n" || read(t, filepath.Join(root, "usr/bin/b")) != "b" {
		t.Fatal("submount lost by refresh")
	}
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(sub, "written-while-merged")) != "w" {
		t.Fatal("submount not carried back out")
	}
	mustNotExist(t, filepath.Join(root, "usr/bin/a"))
	if err := unix.Unmount(sub, 0); err != nil {
		t.Fatalf("unmount submount: %v (something else still holds it)", err)
	}
	checkClean(t, root, root)
}

// Many layers under a long root make the overlay options longer than the
// page mount(2) copies; the merge must still show every layer.
func TestManyLayersUnderALongRoot(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	base := exttest.Root(t, exttest.DefaultOSRelease)
	root := filepath.Join(base, strings.Repeat("long-directory-name-", 4))
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte(exttest.DefaultOSRelease), 0o644); err != nil {
		t.Fatal(err)
	}
	ext := filepath.Join(root, "var/lib/extensions")
	const n = 60
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("extension-with-a-long-name-%02d", i)
		exttest.SysextTree(t, filepath.Join(ext, name), name, anyRelease, map[string]string{"usr/bin/" + name: name})
	}
	e := newEngine(t, root, imageclass.Sysext)
	if _, err := e.Merge(context.Background()); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(root, "usr/bin"))
	if err != nil || len(ents) != n {
		t.Fatalf("%d files in the merged usr/bin (%v), want %d", len(ents), err, n)
	}
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
}
