package kured

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/rootfs"
)

func scratch(t *testing.T) (string, rootfs.Root) {
	t.Helper()
	dir := t.TempDir()
	r, err := rootfs.ParseRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, r
}

func TestSentinelLifecycle(t *testing.T) {
	dir, root := scratch(t)
	// The usual layout: /var/run is an absolute link to /run.
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run", filepath.Join(dir, "var/run")); err != nil {
		t.Fatal(err)
	}
	s, err := New(root, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := s.Present(); err != nil || ok {
		t.Fatalf("present before Acquire: %v %v", ok, err)
	}
	for range 2 { // writing it again is harmless
		if err := s.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "run/reboot-required")
	fi, err := os.Lstat(file)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Fatalf("sentinel in the root's /run: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(file); string(b) != "*** System restart required ***\n" {
		t.Errorf("content %q", b)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "run"))
	if len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	if ok, err := s.Present(); err != nil || !ok {
		t.Fatalf("present after Acquire: %v %v", ok, err)
	}
	if err := s.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(file); !os.IsNotExist(err) {
		t.Fatalf("sentinel after Release: %v", err)
	}
	// Released again, or after a reboot emptied /run: success.
	if err := s.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Present(); ok {
		t.Fatal("present after Release")
	}
}

func TestSentinelStaysInRoot(t *testing.T) {
	dir, root := scratch(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "var/run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	// The sentinel itself is a link out of the root: it is replaced, the
	// target left alone.
	if err := os.Symlink(victim, filepath.Join(run, "reboot-required")); err != nil {
		t.Fatal(err)
	}
	s, _ := New(root, "")
	if err := s.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("file outside the root changed: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(run, "reboot-required")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("sentinel: %v %v", fi, err)
	}
	if err := s.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("Release removed the link's target: %v", err)
	}

	// A directory link out of the root resolves inside it (or fails),
	// never writes outside.
	dir2, root2 := scratch(t)
	os.MkdirAll(filepath.Join(dir2, "var"), 0o755)
	if err := os.Symlink(outside, filepath.Join(dir2, "var/run")); err != nil {
		t.Fatal(err)
	}
	s2, _ := New(root2, "")
	_ = s2.Acquire(context.Background())
	if _, err := os.Lstat(filepath.Join(outside, "reboot-required")); !os.IsNotExist(err) {
		t.Fatalf("sentinel written outside the root: %v", err)
	}
	if err := os.Symlink("../../../../../../..", filepath.Join(dir2, "up")); err != nil {
		t.Fatal(err)
	}
	s3, _ := New(root2, "/up/reboot-required")
	if err := s3.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir2, "reboot-required")); err != nil {
		t.Fatalf("'..' links should resolve to the root itself: %v", err)
	}
}

func TestSentinelPath(t *testing.T) {
	dir, root := scratch(t)
	s, err := New(root, "/etc/kured/../kured/reboot-now")
	if err != nil {
		t.Fatal(err)
	}
	if s.Path() != filepath.Join(dir, "etc/kured/reboot-now") {
		t.Errorf("path %s", s.Path())
	}
	// Missing directories are created (kured's --reboot-sentinel may
	// point anywhere).
	if err := s.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/kured/reboot-now")); err != nil {
		t.Fatal(err)
	}
	// Release with the directory gone is success.
	s2, _ := New(root, "/nonexistent/dir/flag")
	if err := s2.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"var/run/reboot-required", "/", "./x"} {
		if _, err := New(root, p); err == nil || !strings.Contains(err.Error(), "kured sentinel") {
			t.Errorf("New(%q): %v", p, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Acquire(ctx); err == nil {
		t.Error("Acquire with a cancelled context succeeded")
	}
}
