package vm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// cpioWriter writes the "newc" format the kernel unpacks as initramfs.
type cpioWriter struct {
	w   io.Writer
	ino uint32
}

func (c *cpioWriter) header(name string, mode uint32, size int) error {
	c.ino++
	_, err := fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(c.w, name+"\x00"); err != nil {
		return err
	}
	return c.pad(110 + len(name) + 1)
}

func (c *cpioWriter) pad(n int) error {
	if r := n % 4; r != 0 {
		_, err := c.w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

func (c *cpioWriter) dir(name string) error { return c.header(name, 0o040755, 0) }

func (c *cpioWriter) file(name string, mode uint32, data []byte) error {
	if err := c.header(name, 0o100000|mode, len(data)); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return err
	}
	return c.pad(len(data))
}

func (c *cpioWriter) trailer() error { return c.header("TRAILER!!!", 0, 0) }

// guestModules are the kernel modules the guest init needs when the
// kernel has them as modules (Debian's does): virtio transport, disk and
// serial port, the root file systems and overlayfs.
var guestModules = []string{"virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console", "squashfs", "crc32c_generic", "ext4", "erofs", "overlay"}

// ModulesFor resolves the modules (with their dependencies, in load
// order) from modDir/modules.dep; missing ones are skipped (built in).
func ModulesFor(modDir string, names []string) ([]string, error) {
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	defer f.Close()
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base := strings.TrimSuffix(filepath.Base(mod), filepath.Ext(mod))
		base = strings.TrimSuffix(base, ".ko")
		byName[strings.ReplaceAll(base, "-", "_")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(m string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		ds := deps[m]
		// modules.dep lists dependencies nearest first; load the
		// farthest first.
		for i := len(ds) - 1; i >= 0; i-- {
			visit(ds[i])
		}
		order = append(order, m)
	}
	for _, n := range names {
		if m, ok := byName[n]; ok {
			visit(m)
		}
	}
	return order, nil
}

// WriteInitramfs writes a newc initramfs holding the guest init as /init
// and the given modules (relative to modDir) under /lib/modules, with
// /modules.order listing them in load order.
func WriteInitramfs(w io.Writer, guestInit, modDir string, modules []string) error {
	c := &cpioWriter{w: w}
	for _, d := range []string{"dev", "proc", "sys", "newroot", "overlay", "lib", "lib/modules"} {
		if err := c.dir(d); err != nil {
			return err
		}
	}
	init, err := os.ReadFile(guestInit)
	if err != nil {
		return fmt.Errorf("guest init: %w", err)
	}
	if err := c.file("init", 0o755, init); err != nil {
		return err
	}
	var list []string
	for i, m := range modules {
		data, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return err
		}
		if strings.HasSuffix(m, ".xz") || strings.HasSuffix(m, ".zst") || strings.HasSuffix(m, ".gz") {
			return fmt.Errorf("kernel module %s is compressed; the guest init loads plain .ko files only", m)
		}
		name := fmt.Sprintf("lib/modules/%02d-%s", i, filepath.Base(m))
		if err := c.file(name, 0o644, data); err != nil {
			return err
		}
		list = append(list, "/"+name)
	}
	if err := c.file("modules.order", 0o644, []byte(strings.Join(list, "\n")+"\n")); err != nil {
		return err
	}
	return c.trailer()
}
