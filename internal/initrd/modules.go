package initrd

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// DefaultModules are what Strata's /init needs on a virtio disk: the
// block driver, device-mapper with verity, and the /usr and ROOT
// filesystems, and loop and overlay for merging the extensions on ROOT
// before switch_root. crc32c_generic comes before libcrc32c: erofs fails
// with "Unknown symbol crc32c" otherwise (node-os.md §1).
var DefaultModules = []string{
	"virtio_pci", "virtio_blk", "dm-mod", "dm-bufio", "reed_solomon", "dm-verity",
	"crc32c_generic", "libcrc32c", "erofs", "squashfs", "ext4", "loop", "overlay",
}

// ModuleFile is one module to put into the initrd and load at boot.
type ModuleFile struct {
	Name string // canonical name, dashes as underscores ("dm_verity")
	Path string // relative to the module tree ("kernel/drivers/md/dm-verity.ko")
}

// maxIndexSize bounds modules.dep and friends read from the tree.
const maxIndexSize = 64 << 20

// ResolveModules reads modules.dep (and modules.builtin, modules.softdep
// "pre:" entries) from tree, a kernel's /lib/modules/VERSION, and returns
// the wanted modules with their dependencies in load order: every module
// after all it depends on, otherwise in the order wanted. A module built
// into the kernel is left out; one that is neither is an error naming it.
func ResolveModules(tree fs.FS, wanted []string) ([]ModuleFile, error) {
	dep, err := readIndex(tree, "modules.dep")
	if err != nil {
		return nil, err
	}
	byName := map[string]string{} // canonical name -> path
	deps := map[string][]string{} // path -> dependency paths
	for _, line := range lines(dep) {
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		byName[ModuleName(p)] = p
		deps[p] = strings.Fields(rest)
	}
	builtin := map[string]bool{}
	if b, err := readIndex(tree, "modules.builtin"); err == nil {
		for _, p := range lines(b) {
			builtin[ModuleName(p)] = true
		}
	}
	soft := map[string][]string{} // canonical name -> pre: names
	if s, err := readIndex(tree, "modules.softdep"); err == nil {
		for _, line := range lines(s) {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "softdep" {
				continue
			}
			pre := false
			for _, w := range f[2:] {
				switch w {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						soft[canon(f[1])] = append(soft[canon(f[1])], canon(w))
					}
				}
			}
		}
	}

	var order []ModuleFile
	state := map[string]int{} // path -> 1 visiting, 2 done
	var visit func(p string, chain []string) error
	visit = func(p string, chain []string) error {
		switch state[p] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("modules.dep has a dependency cycle: %s", strings.Join(append(chain, ModuleName(p)), " -> "))
		}
		state[p] = 1
		chain = append(chain, ModuleName(p))
		// Soft "pre:" dependencies are loaded first when the tree has
		// them under that name; an alias-only one (crc32c) is skipped,
		// as modprobe would not fail for it either.
		for _, s := range soft[ModuleName(p)] {
			if sp, ok := byName[s]; ok {
				if err := visit(sp, chain); err != nil {
					return err
				}
			}
		}
		for _, d := range deps[p] {
			if _, ok := deps[d]; !ok {
				return fmt.Errorf("modules.dep: %s depends on %s, which has no line of its own", p, d)
			}
			if err := visit(d, chain); err != nil {
				return err
			}
		}
		state[p] = 2
		order = append(order, ModuleFile{Name: ModuleName(p), Path: p})
		return nil
	}
	for _, w := range wanted {
		c := canon(w)
		p, ok := byName[c]
		if !ok {
			if builtin[c] {
				continue
			}
			return nil, fmt.Errorf("kernel module %q is neither in modules.dep nor built in; check --kernel-version and --modules-dir", w)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	for _, m := range order {
		if err := checkModulePath(m.Path); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ModuleName is the canonical module name of a path in the tree:
// "kernel/drivers/md/dm-verity.ko.xz" → "dm_verity".
func ModuleName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return canon(strings.TrimSuffix(b, ".ko"))
}

func canon(name string) string { return strings.ReplaceAll(name, "-", "_") }

func checkModulePath(p string) error {
	if !fs.ValidPath(p) || !strings.Contains(path.Base(p), ".ko") {
		return fmt.Errorf("modules.dep names %q, which is not a module path inside the tree", p)
	}
	return nil
}

func readIndex(tree fs.FS, name string) ([]byte, error) {
	f, err := tree.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read %s of the module tree: %w", name, err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(&limited{f, maxIndexSize + 1}); err != nil {
		return nil, fmt.Errorf("read %s of the module tree: %w", name, err)
	}
	if b.Len() > maxIndexSize {
		return nil, fmt.Errorf("%s of the module tree is larger than %d bytes", name, maxIndexSize)
	}
	return b.Bytes(), nil
}

type limited struct {
	f fs.File
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}
