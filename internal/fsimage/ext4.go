package fsimage

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// ext4Writer runs mkfs.ext4 -d and resize2fs -M, then rewrites every
// timestamp and owner in the image to the epoch and root: e2fsprogs 1.47.0
// stamps the current time into the superblock and inodes and has no
// SOURCE_DATE_EPOCH support. UUID and directory hash seed derive from the
// seed. The journal and metadata checksums are off (a read-only image needs
// neither, and it keeps the timestamp rewrite a plain byte patch).
type ext4Writer struct{}

func (ext4Writer) Format() string { return "ext4" }
func (ext4Writer) IsDir() bool    { return false }

func seedUUID(seed, purpose string) string {
	h := sha256.Sum256([]byte("strata-ext4\x00" + purpose + "\x00" + seed))
	h[6] = h[6]&0x0f | 0x50 // version 5 style
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// treeUsage estimates the blocks and inodes a tree needs.
func treeUsage(root string, extra []File) (blocks, inodes int64, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		inodes++
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			blocks++
		case fi.Mode().IsRegular():
			blocks += (fi.Size()+4095)/4096 + 1
		default:
			blocks++
		}
		return nil
	})
	for _, f := range extra {
		inodes += 4
		blocks += int64(len(f.Data))/4096 + 5
	}
	return blocks, inodes, err
}

func (ext4Writer) Write(ctx context.Context, src, dst string, opt Options) error {
	if opt.Compression != "" && opt.Compression != "none" {
		return fmt.Errorf("ext4: format has no compression (got %q)", opt.Compression)
	}
	if opt.Epoch < 0 || opt.Epoch > 1<<31-1 {
		return fmt.Errorf("ext4: timestamp %d out of range", opt.Epoch)
	}
	tree, drop, err := linkedTree(ctx, src, dst, opt)
	if err != nil {
		return err
	}
	defer drop()
	blocks, inodes, err := treeUsage(tree, nil)
	if err != nil {
		return err
	}
	inodes += 64
	size := (blocks*4096)*5/4 + inodes*256*2 + 16<<20
	env := toolEnv()
	if opt.Size > 0 {
		if opt.Size < size-16<<20 {
			return fmt.Errorf("ext4: %s needs about %d MiB, the filesystem is to be %d MiB", src, (size-16<<20)>>20, opt.Size>>20)
		}
		// A writable filesystem: many inodes, all the space, no shrink.
		if n := opt.Size / (16 << 10); n > inodes {
			inodes = n
		}
		if err := mkext4(ctx, env, tree, dst, opt.Size, inodes, opt); err != nil {
			os.Remove(dst)
			return err
		}
		if err := normalizeExt4(dst, opt.Epoch); err != nil {
			os.Remove(dst)
			return fmt.Errorf("ext4: fixing timestamps in %s: %w", dst, err)
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		err = mkext4(ctx, env, tree, dst, size, inodes, opt)
		if err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
		size *= 2
	}
	if err != nil {
		os.Remove(dst)
		return err
	}
	if err := run(ctx, nil, env, "resize2fs", "-M", dst); err != nil {
		os.Remove(dst)
		return err
	}
	if err := normalizeExt4(dst, opt.Epoch); err != nil {
		os.Remove(dst)
		return fmt.Errorf("ext4: fixing timestamps in %s: %w", dst, err)
	}
	return nil
}

func mkext4(ctx context.Context, env []string, tree, dst string, size, inodes int64, opt Options) error {
	os.Remove(dst)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256",
		"-N", strconv.FormatInt(inodes, 10), "-m", "0",
		"-U", seedUUID(opt.Seed, "uuid"),
		"-E", "root_owner=0:0,hash_seed=" + seedUUID(opt.Seed, "hash") + ",nodiscard,lazy_itable_init=0,lazy_journal_init=0",
		"-O", "^has_journal,^metadata_csum,^resize_inode,^orphan_file",
		"-d", tree, dst}
	return run(ctx, nil, env, "mkfs.ext4", args...)
}
