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

// ModuleGroup is a set of kernel modules the guest init loads together,
// listed in the initramfs as /modules.NAME.
type ModuleGroup struct {
	Name    string
	Modules []string
}

// moduleGroups are the kernel modules the guest init needs when the
// kernel has them as modules (Debian's does). "base" (the virtio
// transport, disk and serial port) is loaded at boot; each other group
// only when the VM needs it: the root file system's type, the ext4
// overlay disk, overlayfs, a network. A one-shot squashfs flake without
// an overlay disk or network thus never loads ext4 (with jbd2 about
// 0.4 s under software emulation) or virtio-net.
var moduleGroups = []ModuleGroup{
	{"base", []string{"virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console"}},
	{"squashfs", []string{"squashfs"}},
	{"erofs", []string{"erofs"}},
	{"ext4", []string{"crc32c_generic", "ext4"}},
	{"overlay", []string{"overlay"}},
	{"net", []string{"virtio_net"}},
}

// ResolveModules resolves every group's modules (with dependencies, in
// load order) from modDir. A module of the base group is not repeated in
// another; modules shared by two on-demand groups are in both (loading
// one twice is harmless).
func ResolveModules(modDir string, groups []ModuleGroup) ([]ModuleGroup, error) {
	var out []ModuleGroup
	base := map[string]bool{}
	for _, g := range groups {
		mods, err := ModulesFor(modDir, g.Modules)
		if err != nil {
			return nil, err
		}
		var keep []string
		for _, m := range mods {
			if !base[m] {
				keep = append(keep, m)
			}
			if g.Name == "base" {
				base[m] = true
			}
		}
		out = append(out, ModuleGroup{Name: g.Name, Modules: keep})
	}
	return out, nil
}

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
// /modules.GROUP listing each group's modules in load order.
func WriteInitramfs(w io.Writer, guestInit, modDir string, groups []ModuleGroup) error {
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
	i := 0
	written := map[string]string{}
	for _, g := range groups {
		var list []string
		for _, m := range g.Modules {
			if name, ok := written[m]; ok {
				list = append(list, name)
				continue
			}
			data, err := os.ReadFile(filepath.Join(modDir, m))
			if err != nil {
				return err
			}
			if strings.HasSuffix(m, ".xz") || strings.HasSuffix(m, ".zst") || strings.HasSuffix(m, ".gz") {
				return fmt.Errorf("kernel module %s is compressed; the guest init loads plain .ko files only", m)
			}
			name := fmt.Sprintf("/lib/modules/%02d-%s", i, filepath.Base(m))
			i++
			if err := c.file(name[1:], 0o644, data); err != nil {
				return err
			}
			written[m] = name
			list = append(list, name)
		}
		if err := c.file("modules."+g.Name, 0o644, []byte(strings.Join(list, "\n")+"\n")); err != nil {
			return err
		}
	}
	return c.trailer()
}
