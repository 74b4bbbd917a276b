package bake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

func TestPlanAndRelease(t *testing.T) {
	p, err := NewPlan(Request{Dir: "/t", Name: "docker", Version: "28.0.4", Arch: "aarch64", OS: "flatcar:level=1.0", OutDir: "/out"}, Tree{HasUnits: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Output != "/out/docker-28.0.4-arm64.raw" || !p.Generate || p.ReleasePath != "usr/lib/extension-release.d/extension-release.docker" {
		t.Errorf("%+v", p)
	}
	want := "ID=flatcar\nSYSEXT_LEVEL=1.0\nARCHITECTURE=arm64\nSYSEXT_ID=docker\nSYSEXT_VERSION_ID=28.0.4\nEXTENSION_RELOAD_MANAGER=1\n"
	if got := string(p.Release.Render()); got != want {
		t.Errorf("release:\n%s\nwant:\n%s", got, want)
	}
	// Confext: CONFEXT_ keys, no reload flag by default.
	p, err = NewPlan(Request{Name: "cfg", Version: "1", Arch: "x86-64", Class: imageclass.Confext, Scope: "system"}, Tree{HasUnits: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Release.Render()); got != "ID=_any\nCONFEXT_SCOPE=system\nARCHITECTURE=x86-64\nCONFEXT_ID=cfg\nCONFEXT_VERSION_ID=1\n" || p.ReleasePath != "etc/extension-release.d/extension-release.cfg" {
		t.Errorf("confext release %q at %s", got, p.ReleasePath)
	}
	// An existing release file is validated, not replaced.
	_, err = NewPlan(Request{Name: "x", Version: "1", Arch: "x86-64"}, Tree{Release: []byte("ID=_any\nARCHITECTURE=arm64\n")})
	if err == nil || !strings.Contains(err.Error(), "ARCHITECTURE=arm64 does not match") {
		t.Errorf("arch mismatch: %v", err)
	}
	p, err = NewPlan(Request{Name: "x", Version: "1", Arch: "x86-64"}, Tree{Release: []byte("ID=_any\nARCHITECTURE=x86-64\n")})
	if err != nil || p.Generate {
		t.Errorf("existing release: %v %v", err, p.Generate)
	}
	p, _ = NewPlan(Request{Name: "x", Version: "1", Arch: "arm64", Format: "dir"}, Tree{})
	if filepath.Base(p.Output) != "x-1-arm64" {
		t.Errorf("dir output %s", p.Output)
	}
}

func bigTree(t *testing.T, n int) string {
	dir := t.TempDir()
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i*7919>>3) ^ byte(i>>11)
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "usr/share/big", fmt.Sprintf("f%04d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		buf[0] = byte(i)
		buf[1] = byte(i >> 8)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCancelLeavesNothing(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	src := bigTree(t, 200)
	out := t.TempDir()
	p, err := NewPlan(Request{Dir: src, Name: "big", Version: "1", Arch: "x86-64", OutDir: out, Compression: "xz"}, Tree{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err = Execute(ctx, p, ExecOptions{})
	if err == nil {
		t.Skip("the bake finished before the deadline")
	}
	if !strings.Contains(err.Error(), "cancel") && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("cancelled bake left %v", ents)
	}
}

func TestCheckFailureStopsWrite(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	src := bigTree(t, 20)
	out := t.TempDir()
	p, _ := NewPlan(Request{Dir: src, Name: "big", Version: "1", Arch: "x86-64", OutDir: out}, Tree{})
	_, err := Execute(context.Background(), p, ExecOptions{Check: func(context.Context) error { return errors.New("lint says no") }})
	if err == nil || err.Error() != "lint says no" {
		t.Fatalf("got %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
}
