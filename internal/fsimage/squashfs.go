package fsimage

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

type squashfsWriter struct{}

func (squashfsWriter) Format() string { return "squashfs" }
func (squashfsWriter) IsDir() bool    { return false }

var squashfsComp = map[string]bool{"gzip": true, "zstd": true, "xz": true, "lz4": true, "lzo": true, "lzma": true}

// squashfsArgs is the mksquashfs command line: the bakery's flags
// (-all-root -noappend, gzip unless told otherwise) plus fixed timestamps.
func squashfsArgs(src, dst string, opt Options, pseudoFile string) ([]string, error) {
	args := []string{src, dst, "-all-root", "-noappend", "-no-recovery"}
	switch c := opt.Compression; {
	case c == "" || c == "gzip":
		// mksquashfs's default, as the bakery runs it.
	case c == "none":
		args = append(args, "-noI", "-noD", "-noF", "-noX")
	case squashfsComp[c]:
		args = append(args, "-comp", c)
	default:
		return nil, fmt.Errorf("squashfs: unknown compression %q (want gzip, zstd, xz, lz4, lzo or none)", c)
	}
	t := strconv.FormatInt(opt.Epoch, 10)
	args = append(args, "-mkfs-time", t, "-all-time", t)
	if pseudoFile != "" {
		args = append(args, "-pf", pseudoFile)
	}
	if opt.Progress == nil {
		args = append(args, "-quiet", "-no-progress")
	} else {
		args = append(args, "-quiet", "-progress")
	}
	return args, nil
}

func (squashfsWriter) Write(ctx context.Context, src, dst string, opt Options) error {
	if opt.Epoch < 0 || opt.Epoch > 1<<32-1 {
		return fmt.Errorf("squashfs: timestamp %d out of range", opt.Epoch)
	}
	extra, err := checkExtra(src, opt.Extra)
	if err != nil {
		return err
	}
	var pseudo string
	if len(extra) > 0 {
		// Extra files go in as pseudo files: mksquashfs reads the tree as it
		// is and nothing is copied.
		dir, err := os.MkdirTemp(stageDir(dst, opt), ".strata-pseudo-")
		if err != nil {
			return err
		}
		defer dropScratch(opt, dir)
		pseudo = filepath.Join(dir, "pseudo")
		if err := os.WriteFile(pseudo, pseudoDefs(src, dir, extra, opt.Epoch), 0o600); err != nil {
			return err
		}
		for i, f := range extra {
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), f.Data, 0o600); err != nil {
				return err
			}
		}
	}
	args, err := squashfsArgs(src, dst, opt, pseudo)
	if err != nil {
		return err
	}
	if err := run(ctx, opt.Progress, toolEnv(), "mksquashfs", args...); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}

// pseudoDefs writes mksquashfs pseudo definitions for the extra files and
// for every parent directory missing from the tree (mksquashfs silently
// drops a pseudo file whose parent does not exist).
func pseudoDefs(src, dataDir string, extra []File, epoch int64) []byte {
	var b strings.Builder
	made := map[string]bool{}
	for i, f := range extra {
		var missing []string
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if made[d] {
				break
			}
			if _, err := os.Lstat(filepath.Join(src, d)); err == nil {
				break
			}
			missing = append(missing, d)
		}
		for j := len(missing) - 1; j >= 0; j-- {
			made[missing[j]] = true
			fmt.Fprintf(&b, "%s D %d 755 0 0\n", pseudoName(missing[j]), epoch)
		}
		fmt.Fprintf(&b, "%s F %d %o 0 0 cat '%s'\n", pseudoName(f.Path), epoch, fileMode(f.Mode), filepath.Join(dataDir, strconv.Itoa(i)))
	}
	return []byte(b.String())
}

// pseudoName escapes a path for a pseudo definition file.
func pseudoName(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r == ' ' || r == '\\' || r == '"' || r == '\t' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func stageDir(dst string, opt Options) string {
	if opt.StageDir != "" {
		return opt.StageDir
	}
	return filepath.Dir(dst)
}
