package fsimage

import (
	"context"
	"fmt"
	"os"
	"strconv"
)

type erofsWriter struct{}

func (erofsWriter) Format() string { return "erofs" }
func (erofsWriter) IsDir() bool    { return false }

// erofsArgs is the bakery's mkfs.erofs command line (lz4hc level 12,
// 64 KiB clusters, fragments and tail packing, zero UUID, all root) plus a
// fixed timestamp.
func erofsArgs(src, dst string, opt Options) ([]string, error) {
	var args []string
	switch opt.Compression {
	case "", "lz4hc":
		args = append(args, "-zlz4hc,12", "-C65536", "-Efragments,ztailpacking")
	case "lz4":
		args = append(args, "-zlz4", "-C65536", "-Eztailpacking")
	case "none":
	default:
		return nil, fmt.Errorf("erofs: unknown compression %q (want lz4hc, lz4 or none)", opt.Compression)
	}
	args = append(args, "-U00000000-0000-0000-0000-000000000000", "--all-root",
		"-T"+strconv.FormatInt(opt.Epoch, 10))
	if opt.Progress == nil {
		args = append(args, "--quiet")
	}
	return append(args, dst, src), nil
}

func (erofsWriter) Write(ctx context.Context, src, dst string, opt Options) error {
	if opt.Epoch < 0 {
		return fmt.Errorf("erofs: timestamp %d out of range", opt.Epoch)
	}
	tree, drop, err := linkedTree(ctx, src, dst, opt)
	if err != nil {
		return err
	}
	defer drop()
	args, err := erofsArgs(tree, dst, opt)
	if err != nil {
		return err
	}
	if err := run(ctx, opt.Progress, toolEnv(), "mkfs.erofs", args...); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}
