// Package initrd assembles Strata's initial ramdisk: a deterministic cpio
// "newc" archive holding the static strata binary as /init and the kernel
// modules the boot needs, resolved from the kernel's module tree.
package initrd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Mode bits of cpio newc headers (the stat(2) S_IF* values).
const (
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	modeType    = 0o170000
)

// Entry is one file of the archive. Name is relative ("init",
// "lib/modules/..."), without a leading slash.
type Entry struct {
	Name string
	Mode uint32 // type | permission bits
	Data []byte // file contents, or the target of a symlink
}

const (
	newcMagic   = "070701"
	trailerName = "TRAILER!!!"
	headerLen   = 110
	// MaxEntryName bounds names read back; the kernel's limit is PATH_MAX.
	MaxEntryName = 4096
)

// WriteCPIO writes entries as a newc archive: sorted by name, parents
// before children, every mtime/uid/gid zero and inode numbers assigned in
// order, so the same entries always give the same bytes.
func WriteCPIO(w io.Writer, entries []Entry) error {
	sorted, err := normalize(entries)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for i, e := range sorted {
		if err := writeRecord(bw, uint32(i+1), e); err != nil {
			return err
		}
	}
	if err := writeRecord(bw, 0, Entry{Name: trailerName}); err != nil {
		return err
	}
	return bw.Flush()
}

// normalize checks names, adds missing parent directories and sorts.
func normalize(entries []Entry) ([]Entry, error) {
	byName := map[string]Entry{}
	for _, e := range entries {
		name, err := cleanName(e.Name)
		if err != nil {
			return nil, err
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("initrd entry %q given twice", name)
		}
		switch e.Mode & modeType {
		case ModeDir, ModeRegular, ModeSymlink:
		default:
			return nil, fmt.Errorf("initrd entry %q: unsupported file type %o", name, e.Mode&modeType)
		}
		if e.Mode&modeType == ModeDir && len(e.Data) > 0 {
			return nil, fmt.Errorf("initrd entry %q: a directory has no data", name)
		}
		e.Name = name
		byName[name] = e
	}
	for name := range byName {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			p, ok := byName[d]
			if !ok {
				byName[d] = Entry{Name: d, Mode: ModeDir | 0o755}
				continue
			}
			if p.Mode&modeType != ModeDir {
				return nil, fmt.Errorf("initrd entry %q is inside %q, which is not a directory", name, d)
			}
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	// Plain byte order puts "a" before "a/b": parents come first.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func cleanName(name string) (string, error) {
	n := strings.TrimPrefix(name, "/")
	if n == "" || n == "." || path.Clean(n) != n || n == ".." || strings.HasPrefix(n, "../") {
		return "", fmt.Errorf("initrd entry name %q is not a clean relative path", name)
	}
	if len(n) > MaxEntryName || strings.ContainsRune(n, 0) || n == trailerName {
		return "", fmt.Errorf("initrd entry name %q is not allowed", name)
	}
	return n, nil
}

func writeRecord(w *bufio.Writer, ino uint32, e Entry) error {
	nlink := uint32(1)
	if e.Mode&modeType == ModeDir {
		nlink = 2
	}
	fields := []uint32{
		ino, e.Mode, 0 /*uid*/, 0 /*gid*/, nlink, 0 /*mtime*/, uint32(len(e.Data)),
		0, 0 /*dev major, minor*/, 0, 0 /*rdev*/, uint32(len(e.Name) + 1), 0, /*check*/
	}
	var hdr bytes.Buffer
	hdr.WriteString(newcMagic)
	for _, f := range fields {
		fmt.Fprintf(&hdr, "%08X", f)
	}
	hdr.WriteString(e.Name)
	hdr.WriteByte(0)
	pad(&hdr, hdr.Len())
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("write cpio header of %s: %w", e.Name, err)
	}
	if _, err := w.Write(e.Data); err != nil {
		return fmt.Errorf("write cpio data of %s: %w", e.Name, err)
	}
	if n := (4 - len(e.Data)%4) % 4; n > 0 {
		if _, err := w.Write(make([]byte, n)); err != nil {
			return fmt.Errorf("write cpio padding of %s: %w", e.Name, err)
		}
	}
	return nil
}

func pad(b *bytes.Buffer, n int) {
	for ; n%4 != 0; n++ {
		b.WriteByte(0)
	}
}

// ReadCPIO parses a newc archive back into entries (up to the trailer).
// maxSize bounds the total bytes read, so a hostile archive cannot make
// it allocate without limit.
func ReadCPIO(r io.Reader, maxSize int64) ([]Entry, error) {
	lr := &io.LimitedReader{R: r, N: maxSize}
	var out []Entry
	hdr := make([]byte, headerLen)
	for {
		if _, err := io.ReadFull(lr, hdr); err != nil {
			return nil, fmt.Errorf("read cpio header after %d entries: %w", len(out), noEOF(err))
		}
		if string(hdr[:6]) != newcMagic {
			return nil, fmt.Errorf("cpio entry %d: bad magic %q (want newc %s)", len(out)+1, hdr[:6], newcMagic)
		}
		field := func(i int) (uint32, error) {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			return uint32(v), err
		}
		var f [13]uint32
		for i := range f {
			v, err := field(i)
			if err != nil {
				return nil, fmt.Errorf("cpio entry %d: bad header field %d", len(out)+1, i)
			}
			f[i] = v
		}
		mode, size, nameSize := f[1], f[6], f[11]
		if nameSize == 0 || nameSize > MaxEntryName+1 {
			return nil, fmt.Errorf("cpio entry %d: name size %d out of range", len(out)+1, nameSize)
		}
		if int64(size) > lr.N {
			return nil, fmt.Errorf("cpio entry %d: size %d is past the end of the archive", len(out)+1, size)
		}
		nameBuf := make([]byte, nameSize+uint32((4-(headerLen+int(nameSize))%4)%4))
		if _, err := io.ReadFull(lr, nameBuf); err != nil {
			return nil, fmt.Errorf("read cpio name of entry %d: %w", len(out)+1, noEOF(err))
		}
		name := string(bytes.TrimRight(nameBuf[:nameSize], "\x00"))
		if name == trailerName {
			return out, nil
		}
		data := make([]byte, size+(4-size%4)%4)
		if _, err := io.ReadFull(lr, data); err != nil {
			return nil, fmt.Errorf("read cpio data of %s: %w", name, noEOF(err))
		}
		out = append(out, Entry{Name: name, Mode: mode, Data: data[:size]})
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
