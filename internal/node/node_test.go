package node

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sysupdate"
)

func TestRefreshClasses(t *testing.T) {
	cases := []struct {
		links []string
		want  []imageclass.Class
	}{
		{nil, []imageclass.Class{imageclass.Sysext}},
		{[]string{"/etc/extensions/foo.raw"}, []imageclass.Class{imageclass.Sysext}},
		{[]string{"/var/lib/confexts/bar.raw"}, []imageclass.Class{imageclass.Confext}},
		{[]string{"/var/lib/confexts/bar.raw", "/var/lib/extensions/foo.raw"}, []imageclass.Class{imageclass.Sysext, imageclass.Confext}},
		{[]string{"/opt/elsewhere/foo.raw"}, nil},
	}
	for _, c := range cases {
		if got := RefreshClasses(c.links); !reflect.DeepEqual(got, c.want) {
			t.Errorf("RefreshClasses(%v) = %v, want %v", c.links, got, c.want)
		}
	}
}

func TestShouldReboot(t *testing.T) {
	for _, c := range []struct {
		booted, installed string
		want              bool
	}{{"", "2", true}, {"1", "2", true}, {"2", "2", false}} {
		if got := ShouldReboot(c.booted, c.installed); got != c.want {
			t.Errorf("ShouldReboot(%q, %q) = %v", c.booted, c.installed, got)
		}
	}
}

func TestRebootIfNewerReadsTheRootsRelease(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=test\nIMAGE_VERSION=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reboots := 0
	n := &Node{Root: mustRoot(t, root), Reboot: func(context.Context) error { reboots++; return nil }}
	if err := n.RebootIfNewer(context.Background(), "2"); err != nil || reboots != 0 {
		t.Fatalf("booted version: err %v, %d reboots", err, reboots)
	}
	if err := n.RebootIfNewer(context.Background(), "3"); err != nil || reboots != 1 {
		t.Fatalf("newer version: err %v, %d reboots", err, reboots)
	}
	n.Reboot = func(context.Context) error { return errors.New("denied") }
	if err := n.RebootIfNewer(context.Background(), "3"); err == nil || err.Error() != "reboot: denied" {
		t.Fatalf("failed reboot: %v", err)
	}
}

func TestRefreshForReportsWhichMergeFailed(t *testing.T) {
	var buf bytes.Buffer
	var refreshed []imageclass.Class
	n := &Node{Log: slog.New(slog.NewTextHandler(&buf, nil)), Refresh: func(_ context.Context, c imageclass.Class) error {
		refreshed = append(refreshed, c)
		if c == imageclass.Confext {
			return errors.New("overlay busy")
		}
		return nil
	}}
	err := n.RefreshFor(context.Background(), []string{"/etc/extensions/a.raw", "/var/lib/confexts/b.raw"})
	if err == nil || !strings.Contains(err.Error(), "refreshing the confext merge failed (the previous merge stays active): overlay busy") {
		t.Fatalf("error %v", err)
	}
	if !reflect.DeepEqual(refreshed, []imageclass.Class{imageclass.Sysext, imageclass.Confext}) {
		t.Fatalf("refreshed %v", refreshed)
	}
	if !strings.Contains(buf.String(), "Refreshed") {
		t.Fatalf("log %q", buf.String())
	}
}

// A failed add leaves no definition behind, and the one it wrote was in
// the node's layout.
func TestAddFailureLeavesNoDefinition(t *testing.T) {
	root := t.TempDir()
	var sawDef []byte
	n := &Node{Root: mustRoot(t, root), Updater: func(component string, offline bool) (*sysupdate.Engine, error) {
		b, err := os.ReadFile(filepath.Join(root, "etc/sysupdate."+component+".d", component+".transfer"))
		sawDef = b
		if err != nil {
			return nil, err
		}
		return nil, errors.New("repository unreachable")
	}}
	_, err := n.Add(context.Background(), AddOptions{Name: "hello", RepoURL: "http://127.0.0.1:1/repo/", Verify: true, InstancesMax: 2})
	if err == nil || err.Error() != "repository unreachable" {
		t.Fatalf("Add error %v", err)
	}
	if !bytes.Contains(sawDef, []byte("Path=http://127.0.0.1:1/repo\n")) || !bytes.Contains(sawDef, []byte("CurrentSymlink=/etc/extensions/hello.raw")) {
		t.Fatalf("definition written:\n%s", sawDef)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/sysupdate.hello.d")); !os.IsNotExist(err) {
		t.Fatalf("definition dir left behind: %v", err)
	}
	if _, err := n.Add(context.Background(), AddOptions{Name: "../x", RepoURL: "http://x"}); err == nil {
		t.Fatal("bad name accepted")
	}
}

func TestRemoveNotInstalled(t *testing.T) {
	n := &Node{Root: mustRoot(t, t.TempDir())}
	err := n.Remove(context.Background(), "ghost", true)
	if err == nil || err.Error() != "extension ghost is not installed (no /etc/extensions/ghost.raw, no /etc/sysupdate.ghost.d/ghost.transfer)" {
		t.Fatalf("Remove: %v", err)
	}
}

func mustRoot(t *testing.T, dir string) rootfs.Root {
	t.Helper()
	r, err := rootfs.ParseRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
