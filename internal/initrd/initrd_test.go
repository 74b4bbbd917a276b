package initrd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func fakeTree() fstest.MapFS {
	return fstest.MapFS{
		"modules.dep": {Data: []byte("kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko\n" +
			"kernel/drivers/md/dm-bufio.ko:\nkernel/drivers/md/dm-mod.ko:\nkernel/fs/erofs/erofs.ko: kernel/lib/libcrc32c.ko\n" +
			"kernel/lib/libcrc32c.ko:\nkernel/crypto/crc32c_generic.ko:\n")},
		"modules.builtin":                 {Data: []byte("kernel/fs/ext4/ext4.ko\n")},
		"modules.softdep":                 {Data: []byte("softdep libcrc32c pre: crc32c_generic\n")},
		"kernel/drivers/md/dm-verity.ko":  {Data: []byte("verity")},
		"kernel/drivers/md/dm-bufio.ko":   {Data: []byte("bufio")},
		"kernel/drivers/md/dm-mod.ko":     {Data: []byte("mod")},
		"kernel/fs/erofs/erofs.ko":        {Data: []byte("erofs")},
		"kernel/lib/libcrc32c.ko":         {Data: []byte("libcrc")},
		"kernel/crypto/crc32c_generic.ko": {Data: []byte("crcgen")},
	}
}

func TestResolveModulesOrdersDependenciesFirst(t *testing.T) {
	mods, err := ResolveModules(fakeTree(), []string{"dm-verity", "erofs", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	got := strings.Join(names, " ")
	want := "dm_bufio dm_mod dm_verity crc32c_generic libcrc32c erofs"
	if got != want {
		t.Fatalf("load order %q, want %q", got, want)
	}
}

func TestResolveModulesMissingNamesIt(t *testing.T) {
	_, err := ResolveModules(fakeTree(), []string{"dm-verity", "virtio_blk"})
	if err == nil || !strings.Contains(err.Error(), `"virtio_blk"`) {
		t.Fatalf("err = %v, want one naming virtio_blk", err)
	}
}

func TestWriteIsDeterministicAndReadsBack(t *testing.T) {
	spec := Spec{Init: []byte("#!init"), Modules: fakeTree(), Wanted: []string{"dm-verity", "erofs"}}
	var a, b bytes.Buffer
	if err := Write(&a, spec); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, spec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same inputs gave different bytes")
	}
	entries, err := ReadCPIO(bytes.NewReader(a.Bytes()), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		files[e.Name] = string(e.Data)
	}
	if files["init"] != "#!init" || files["lib/modules/kernel/fs/erofs/erofs.ko"] != "erofs" {
		t.Fatalf("entries read back: %v", files)
	}
	list := ParseModuleList([]byte(files[ModuleListPath]))
	if len(list) != 6 || list[len(list)-1] != "kernel/fs/erofs/erofs.ko" {
		t.Fatalf("module list %q", list)
	}

	// GNU cpio is the reference reader.
	if _, err := exec.LookPath("cpio"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cpio is missing (scripts/deps installs it)")
		}
		t.Skip("cpio not installed")
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(a.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v: %s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "lib/modules/kernel/drivers/md/dm-verity.ko"))
	if err != nil || string(got) != "verity" {
		t.Fatalf("cpio extracted %q, %v", got, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "init")); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("init: %v %v", st, err)
	}
}

func TestWriteCPIORejectsTraversal(t *testing.T) {
	if err := WriteCPIO(&bytes.Buffer{}, []Entry{{Name: "../etc/passwd", Mode: ModeRegular}}); err == nil {
		t.Fatal("a name leaving the archive was accepted")
	}
}

func FuzzReadCPIO(f *testing.F) {
	var b bytes.Buffer
	_ = WriteCPIO(&b, []Entry{{Name: "a/b", Mode: ModeRegular | 0o644, Data: []byte("x")}})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadCPIO(bytes.NewReader(data), 1<<20)
	})
}
