package osimage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stratalinux/strata/internal/fsimage"
)

// Placement is where one extension image given to bake or add-sysext goes on ROOT (paths relative
// to ROOT's top, no leading slash).
//
// "NAME:FILE" is the sysext-bakery's bake_flatcar_image.sh form: the image is copied to
// /opt/extensions/FILE, /etc/extensions/NAME.raw links to it (so systemd-sysext and Strata merge it
// under NAME, and sysupdate's CurrentSymlink finds it), and NAME.conf beside FILE, if there is one, goes
// to /etc/sysupdate.NAME.d/. A bare FILE goes to /var/lib/extensions/FILE, merged under its own name.
type Placement struct {
	Source string // the image file on the build host
	Name   string // NAME of NAME:FILE; "" for a bare FILE
	Image  string // where the image goes
	Link   string // the link to create, "" for none
	Target string // what Link points to: the image's path on the booted system
	// ConfSource and Conf are the sysupdate definition beside the image, when there is one.
	ConfSource, Conf string
}

// PlaceExtension decides where arg ("NAME:FILE" or "FILE") goes. exists says whether a file exists on
// the build host (for NAME.conf beside FILE).
func PlaceExtension(arg string, exists func(string) bool) (Placement, error) {
	name, file := "", arg
	if i := strings.IndexByte(arg, ':'); i > 0 && !strings.Contains(arg[:i], "/") {
		name, file = arg[:i], arg[i+1:]
	}
	if file == "" {
		return Placement{}, fmt.Errorf("--sysext %q: no image file after the name", arg)
	}
	base := filepath.Base(file)
	if base == "." || base == ".." || base == "/" {
		return Placement{}, fmt.Errorf("--sysext %q: %q is not an image file", arg, file)
	}
	if name == "" {
		return Placement{Source: file, Image: path.Join("var/lib/extensions", base)}, nil
	}
	if name == "." || name == ".." || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "\x00\\") {
		return Placement{}, fmt.Errorf("--sysext %q: %q is not an extension name", arg, name)
	}
	p := Placement{Source: file, Name: name, Image: path.Join("opt/extensions", base),
		Link: path.Join("etc/extensions", name+".raw"), Target: "/" + path.Join("opt/extensions", base)}
	if conf := filepath.Join(filepath.Dir(file), name+".conf"); exists(conf) {
		p.ConfSource, p.Conf = conf, path.Join("etc/sysupdate."+name+".d", name+".conf")
	}
	return p, nil
}

// rootContent is what goes into a ROOT ext4: files and symbolic links (path → target).
type rootContent struct {
	files []fsimage.File
	links map[string]string
}

// has says whether ROOT already holds p.
func (c *rootContent) has(p string) bool {
	if _, ok := c.links[p]; ok {
		return true
	}
	for _, f := range c.files {
		if f.Path == p {
			return true
		}
	}
	return false
}

// add reads the placed image (and its .conf) and adds it; an image, link or .conf ROOT already holds is
// an error (bake_flatcar_image.sh's ln -s would fail the same way).
func (c *rootContent) add(p Placement) error {
	for _, q := range []string{p.Image, p.Link, p.Conf} {
		if q != "" && c.has(q) {
			return fmt.Errorf("ROOT already holds /%s", q)
		}
	}
	b, err := os.ReadFile(p.Source)
	if err != nil {
		return fmt.Errorf("--sysext: %w", err)
	}
	c.files = append(c.files, fsimage.File{Path: p.Image, Data: b, Mode: 0o644})
	if p.Link != "" {
		if c.links == nil {
			c.links = map[string]string{}
		}
		c.links[p.Link] = p.Target
	}
	if p.Conf != "" {
		b, err := os.ReadFile(p.ConfSource)
		if err != nil {
			return fmt.Errorf("--sysext %s: %w", p.Name, err)
		}
		c.files = append(c.files, fsimage.File{Path: p.Conf, Data: b, Mode: 0o644})
	}
	return nil
}

// placeAll places and adds every --sysext argument.
func (c *rootContent) placeAll(args []string) error {
	exists := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && st.Mode().IsRegular()
	}
	for _, a := range args {
		p, err := PlaceExtension(a, exists)
		if err != nil {
			return err
		}
		if err := c.add(p); err != nil {
			return err
		}
	}
	return nil
}

// writeLinks creates c's links in the (empty) tree the ext4 is built from.
func (c *rootContent) writeLinks(tree string) error {
	for p, target := range c.links {
		full := filepath.Join(tree, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(target, full); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}
