// Package fsimage writes a directory tree into a filesystem image: squashfs
// (mksquashfs), erofs (mkfs.erofs), ext4 (mkfs.ext4 -d) or a plain directory.
// Every writer is reproducible: owners are root, timestamps are the given
// epoch, UUIDs and hash seeds are fixed, so the same tree gives the same
// bytes on any machine. A DDI writer can join behind the same interface.
package fsimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
)

// File is an extra regular file added to the image on top of the source
// tree, such as a generated extension-release. Path is slash-separated and
// relative to the image root; it must not exist in the source tree.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// Options are the knobs every writer honours.
type Options struct {
	// Epoch is the timestamp of every inode and of the filesystem itself
	// (SOURCE_DATE_EPOCH).
	Epoch int64
	// Compression selects the compressor where the format has one; empty
	// means the format's default (the bakery's choice).
	Compression string
	// Seed derives fixed UUIDs and hash seeds; the same seed gives the same
	// bytes.
	Seed string
	// Extra files are added to the image without touching the source tree.
	Extra []File
	// Size, for ext4, is the filesystem's exact size in bytes (a writable
	// partition that must offer its free space, as an OS's ROOT); zero
	// shrinks the image to its content.
	Size int64
	// Progress receives the tool's progress output; nil keeps it quiet.
	Progress io.Writer
	// StageDir is where a writer may create a scratch directory (it must be
	// on the same filesystem as the output for hard-link staging to work);
	// empty means the output's directory.
	StageDir string
	// Scratch, if set, takes over removing the scratch directories a
	// writer made (the caller can then remove them while it hashes the
	// image); otherwise the writer removes them before it returns.
	Scratch func(dir string)
}

// linkedTree is the tree a tool that cannot take extra files should read:
// src itself, or, when opt.Extra adds files, a hard-link farm of src with
// them (drop hands the farm to dropScratch).
func linkedTree(ctx context.Context, src, dst string, opt Options) (tree string, drop func(), err error) {
	extra, err := checkExtra(src, opt.Extra)
	if err != nil {
		return "", nil, err
	}
	if len(extra) == 0 {
		return src, func() {}, nil
	}
	st, err := stage(ctx, src, stageDir(dst, opt), extra, opt.Epoch, false)
	if err != nil {
		return "", nil, err
	}
	return st, func() { dropScratch(opt, st) }, nil
}

// dropScratch hands a scratch directory to opt.Scratch or removes it.
func dropScratch(opt Options, dir string) {
	if opt.Scratch != nil {
		opt.Scratch(dir)
		return
	}
	os.RemoveAll(dir)
}

// Writer turns a tree into an image at dst. dst must not exist; on error
// nothing is left there.
type Writer interface {
	// Format is the name used on the command line.
	Format() string
	// Write builds the image of the tree at src into dst.
	Write(ctx context.Context, src, dst string, opt Options) error
	// IsDir tells whether the output is a directory rather than a file.
	IsDir() bool
}

// Formats lists the supported formats, default first.
var formats = []string{"squashfs", "erofs", "ext4", "dir"}

// Formats returns the supported format names, default first.
func Formats() []string { return append([]string(nil), formats...) }

// New returns the writer for a format name.
func New(format string) (Writer, error) {
	switch format {
	case "squashfs", "":
		return squashfsWriter{}, nil
	case "erofs":
		return erofsWriter{}, nil
	case "ext4":
		return ext4Writer{}, nil
	case "dir", "directory":
		return dirWriter{}, nil
	}
	return nil, fmt.Errorf("unknown image format %q (want one of %s)", format, strings.Join(formats, ", "))
}

// ToolMissingError says which program is missing and which package has it.
type ToolMissingError struct {
	Tool    string
	Package string
}

func (e *ToolMissingError) Error() string {
	return fmt.Sprintf("%s not found in PATH: install the %s package (apt-get install %s, dnf install %s)", e.Tool, e.Package, e.Package, e.Package)
}

var toolPackages = map[string]string{
	"mksquashfs": "squashfs-tools",
	"mkfs.erofs": "erofs-utils",
	"mkfs.ext4":  "e2fsprogs",
	"resize2fs":  "e2fsprogs",
}

// LookTool finds a program on PATH or returns a *ToolMissingError.
func LookTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &ToolMissingError{Tool: name, Package: toolPackages[name]}
	}
	return p, nil
}

// run executes a tool, sending its standard output to progress (or
// nowhere) and keeping the tail of its error output for the error message.
func run(ctx context.Context, progress io.Writer, env []string, name string, args ...string) error {
	bin, err := LookTool(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if progress != nil {
		cmd.Stdout = progress
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return fmt.Errorf("%s failed: %w", name, err)
		}
		return fmt.Errorf("%s failed: %w: %s", name, err, msg)
	}
	return nil
}

// toolEnv is the environment for the tools: ours without SOURCE_DATE_EPOCH
// (the timestamps are passed as flags, and mksquashfs refuses both) and
// with a fixed locale.
func toolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") || strings.HasPrefix(kv, "LC_ALL=") || strings.HasPrefix(kv, "TZ=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C", "TZ=UTC")
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	s := string(bytes.ReplaceAll(t.b, []byte("\n"), []byte("; ")))
	return strings.TrimSuffix(strings.TrimSpace(s), ";")
}

// checkExtra validates the extra files: clean relative paths, not present
// in the source tree, no duplicates. It returns them sorted by path.
func checkExtra(src string, extra []File) ([]File, error) {
	out := append([]File(nil), extra...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	for i, f := range out {
		if !fs.ValidPath(f.Path) || f.Path == "." {
			return nil, fmt.Errorf("extra file %q: not a clean relative path", f.Path)
		}
		if i > 0 && out[i-1].Path == f.Path {
			return nil, fmt.Errorf("extra file %q given twice", f.Path)
		}
		if _, err := os.Lstat(src + "/" + f.Path); err == nil {
			return nil, fmt.Errorf("extra file %q already exists in %s", f.Path, src)
		} else if !errors.Is(err, fs.ErrNotExist) && !isNotDir(err) {
			return nil, err
		}
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			fi, err := os.Lstat(src + "/" + d)
			if err == nil && !fi.IsDir() {
				return nil, fmt.Errorf("cannot add %s: %s in %s is not a directory", f.Path, d, src)
			}
		}
	}
	return out, nil
}

func isNotDir(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return strings.Contains(pe.Err.Error(), "not a directory")
	}
	return false
}

func fileMode(m fs.FileMode) fs.FileMode {
	if m == 0 {
		return 0o644
	}
	return m.Perm()
}
