package osimage

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/fsread"
)

func TestPlaceExtension(t *testing.T) {
	has := func(p string) bool { return p == "dl/docker.conf" }
	for _, c := range []struct {
		arg  string
		want Placement
		err  string
	}{
		{"dl/docker:28.raw", Placement{Source: "dl/docker:28.raw", Image: "var/lib/extensions/docker:28.raw"}, ""},
		{"tools.raw", Placement{Source: "tools.raw", Image: "var/lib/extensions/tools.raw"}, ""},
		{"docker:dl/docker-28.0-x86-64.raw", Placement{Source: "dl/docker-28.0-x86-64.raw", Name: "docker",
			Image: "opt/extensions/docker-28.0-x86-64.raw", Link: "etc/extensions/docker.raw", Target: "/opt/extensions/docker-28.0-x86-64.raw",
			ConfSource: "dl/docker.conf", Conf: "etc/sysupdate.docker.d/docker.conf"}, ""},
		{"k8s:k8s-1.31.raw", Placement{Source: "k8s-1.31.raw", Name: "k8s", Image: "opt/extensions/k8s-1.31.raw",
			Link: "etc/extensions/k8s.raw", Target: "/opt/extensions/k8s-1.31.raw"}, ""},
		{"docker:", Placement{}, "no image file"},
		{"..:x.raw", Placement{}, "not an extension name"},
		{"a:..", Placement{}, "not an image file"},
	} {
		got, err := PlaceExtension(c.arg, has)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.arg, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v\nwant %+v", c.arg, got, err, c.want)
		}
	}
}

// rootFS reads ROOT of a baked disk back.
func rootFS(t *testing.T, disk string) fs.FS {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tb, _ := readTable(t, f)
	p := tb.ByIndex(IndexRoot)
	img, err := fsread.Open(io.NewSectionReader(f, p.Start(), p.Size()), p.Size(), "")
	if err != nil {
		t.Fatal(err)
	}
	return img.FS
}

// TestBakeNamedExtensionsAsTheBakery: NAME:FILE puts the image in /opt/extensions/, the link
// /etc/extensions/NAME.raw and NAME.conf where bake_flatcar_image.sh puts them; e2fsck accepts ROOT;
// adding the same extensions later gives the bytes of baking them in.
func TestBakeNamedExtensionsAsTheBakery(t *testing.T) {
	src := t.TempDir()
	img := filepath.Join(src, "docker-28.0-x86-64.raw")
	if err := os.WriteFile(img, bytes.Repeat([]byte("d"), 9000), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := "[Transfer]\nVerify=false\n"
	if err := os.WriteFile(filepath.Join(src, "docker.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(src, "tools.raw")
	if err := os.WriteFile(plain, []byte("tools"), 0o644); err != nil {
		t.Fatal(err)
	}
	named := "docker:" + img
	with := bake(t, t.TempDir(), "1.0.0", named, plain)
	root := rootFS(t, with)
	if target, err := fs.ReadLink(root, "etc/extensions/docker.raw"); err != nil || target != "/opt/extensions/docker-28.0-x86-64.raw" {
		t.Fatalf("link: %q, %v", target, err)
	}
	for p, want := range map[string]int{"opt/extensions/docker-28.0-x86-64.raw": 9000, "etc/sysupdate.docker.d/docker.conf": len(conf), "var/lib/extensions/tools.raw": 5} {
		b, err := fs.ReadFile(root, p)
		if err != nil || len(b) != want {
			t.Fatalf("%s: %d bytes, %v; want %d", p, len(b), err, want)
		}
	}
	f, err := os.Open(with)
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := readTable(t, f)
	part := filepath.Join(t.TempDir(), "root.ext4")
	copyOut(t, f, tb.ByIndex(IndexRoot).Start(), tb.ByIndex(IndexRoot).Size(), part)
	f.Close()
	if out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn ROOT: %v\n%s", err, out)
	}

	later := bake(t, t.TempDir(), "1.0.0")
	if err := AddExtensions(context.Background(), later, []string{named}, 0); err != nil {
		t.Fatal(err)
	}
	if err := AddExtensions(context.Background(), later, []string{plain}, 0); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(with)
	b, _ := os.ReadFile(later)
	if !bytes.Equal(a, b) {
		t.Fatal("bake --sysext NAME:FILE and AddExtensions twice differ")
	}
	if err := AddExtensions(context.Background(), later, []string{"docker:" + plain}, 0); err == nil || !strings.Contains(err.Error(), "already holds /etc/extensions/docker.raw") {
		t.Fatalf("second docker: %v", err)
	}
}
