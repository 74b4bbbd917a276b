package verity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// chunkSize is how much data one worker reads at once: large reads keep
// the page cache and the disk streaming while the other worker hashes.
const chunkSize = 8 << 20

// hashLeaves puts SHA256(salt ‖ block) of every data block, in order, into
// out (32 bytes each). The leaves are independent, so GOMAXPROCS workers
// take chunks in turn.
func hashLeaves(ctx context.Context, data io.ReaderAt, dataName string, blocks uint64, dbs uint32, salt []byte, out []byte) error {
	bs := int64(dbs)
	chunkBlocks := int64(chunkSize) / bs
	chunks := (int64(blocks) + chunkBlocks - 1) / chunkBlocks
	workers := min(int64(runtime.GOMAXPROCS(0)), chunks)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunkBlocks*bs)
			h := sha256.New()
			for {
				c := next.Add(1) - 1
				if c >= chunks || ctx.Err() != nil {
					return
				}
				first := c * chunkBlocks
				n := min(chunkBlocks, int64(blocks)-first)
				b := buf[:n*bs]
				if got, err := data.ReadAt(b, first*bs); int64(got) < n*bs {
					if err == nil || errors.Is(err, io.EOF) {
						err = fmt.Errorf("it ends at byte %d, before its %d blocks of %d bytes", first*bs+int64(got), blocks, bs)
					}
					errs[w] = fmt.Errorf("read %s: %w", dataName, err)
					cancel()
					return
				}
				for i := int64(0); i < n; i++ {
					h.Reset()
					h.Write(salt)
					h.Write(b[i*bs : (i+1)*bs])
					h.Sum(out[(first+i)*digestSize : (first+i)*digestSize : (first+i+1)*digestSize])
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// hashBlocks hashes each hash block of src into dst, as the level above.
func hashBlocks(src []byte, hbs int, salt []byte, dst []byte) {
	h := sha256.New()
	for i := 0; i*hbs < len(src); i++ {
		h.Reset()
		h.Write(salt)
		h.Write(src[i*hbs : (i+1)*hbs])
		h.Sum(dst[i*digestSize : i*digestSize : (i+1)*digestSize])
	}
}

func saltedSum(salt, block []byte) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	return h.Sum(nil)
}

// level returns the bytes of tree level i inside tree (which starts at g.start).
func (g geometry) level(tree []byte, i int) []byte {
	off := (g.levelStart[i] - g.start) * g.hashBlock
	return tree[off : off+int64(g.levelSize[i])*g.hashBlock]
}

// Format reads dataSize bytes of data (a multiple of the data block size),
// writes the superblock and the hash tree to hash starting at hashOffset,
// and returns the root hash and the number of bytes written there. The
// bytes are those `veritysetup format --salt --uuid --hash-offset` writes.
func Format(ctx context.Context, data io.ReaderAt, dataSize int64, hash io.WriterAt, hashOffset int64, p Params) (root []byte, hashSize int64, err error) {
	p = p.withDefaults()
	if err := p.check(); err != nil {
		return nil, 0, err
	}
	dataName := nameOf(data, "the data")
	if dataSize <= 0 || dataSize%int64(p.DataBlockSize) != 0 {
		return nil, 0, fmt.Errorf("%s is %d bytes, not a positive multiple of the %d-byte data block size: pad the image to a multiple of %d", dataName, dataSize, p.DataBlockSize, p.DataBlockSize)
	}
	blocks := uint64(dataSize / int64(p.DataBlockSize))
	g, err := layout(blocks, hashOffset, p)
	if err != nil {
		return nil, 0, err
	}
	hb := g.hashBlock
	head := g.start*hb - hashOffset // superblock and the gap up to the first tree block
	out := make([]byte, head+(g.end-g.start)*hb)
	sb := Superblock{Version: 1, HashType: 1, UUID: p.UUID, Algorithm: "sha256",
		DataBlockSize: p.DataBlockSize, HashBlockSize: p.HashBlockSize, DataBlocks: blocks, Salt: p.Salt}
	copy(out, sb.encode())
	tree := out[head:]

	if len(g.levelSize) == 0 {
		// One data block: veritysetup writes no tree, the root is its hash.
		leaf := make([]byte, digestSize)
		if err := hashLeaves(ctx, data, dataName, blocks, p.DataBlockSize, p.Salt, leaf); err != nil {
			return nil, 0, err
		}
		root = leaf
	} else {
		if err := hashLeaves(ctx, data, dataName, blocks, p.DataBlockSize, p.Salt, g.level(tree, 0)); err != nil {
			return nil, 0, err
		}
		for i := 1; i < len(g.levelSize); i++ {
			hashBlocks(g.level(tree, i-1), int(hb), p.Salt, g.level(tree, i))
		}
		root = saltedSum(p.Salt, g.level(tree, len(g.levelSize)-1))
	}
	if err := ctxErr(ctx); err != nil {
		return nil, 0, err
	}
	if _, err := hash.WriteAt(out, hashOffset); err != nil {
		return nil, 0, fmt.Errorf("write verity hash tree to %s at offset %d: %w", nameOf(hash, "the hash device"), hashOffset, err)
	}
	return root, int64(len(out)), nil
}

// VerifyTree checks the hash tree at hashOffset against root without
// reading the data: every level hashes to the one above and the top to
// root. It is cheap (the tree is 1/128 of the data) and catches a root
// hash, signature or sidecar that belongs to another image before anything
// is mounted; the data blocks themselves are checked by the kernel as they
// are read (or by Verify).
//
// With one data block there is no tree (the root is that block's own hash):
// VerifyTree returns ErrNoTree, and the caller checks the block with Verify.
func VerifyTree(hash io.ReaderAt, hashOffset int64, root []byte) error {
	sb, _, err := verifyTree(hash, hashOffset, root)
	if err == nil && sb.DataBlocks <= 1 {
		return ErrNoTree
	}
	return err
}

// ErrNoTree: the hash area holds only the superblock (one data block).
var ErrNoTree = errors.New("the data is one block: no hash tree to check without it")

func verifyTree(hash io.ReaderAt, hashOffset int64, root []byte) (Superblock, []byte, error) {
	hashName := nameOf(hash, "the hash device")
	sb, err := ReadSuperblock(hash, hashOffset)
	if err != nil {
		return Superblock{}, nil, fmt.Errorf("%s: %w", hashName, err)
	}
	p := sb.params()
	g, err := layout(sb.DataBlocks, hashOffset, p)
	if err != nil {
		return Superblock{}, nil, fmt.Errorf("%s: %w", hashName, err)
	}
	hb := g.hashBlock
	treeSize := (g.end - g.start) * hb
	// Probe the last byte before allocating, so a superblock claiming a
	// huge device cannot make us allocate its tree.
	if treeSize > 0 {
		if _, err := hash.ReadAt(make([]byte, 1), g.end*hb-1); err != nil {
			return Superblock{}, nil, fmt.Errorf("hash area of %s is truncated: the superblock's %d data blocks need a tree up to byte %d: %w", hashName, sb.DataBlocks, g.end*hb, err)
		}
	}
	tree := make([]byte, treeSize)
	if n, err := hash.ReadAt(tree, g.start*hb); int64(n) < treeSize {
		return Superblock{}, nil, fmt.Errorf("hash area of %s is truncated at byte %d: %w", hashName, g.start*hb+int64(n), err)
	}
	levels := len(g.levelSize)
	var leaves []byte
	if levels == 0 {
		leaves = root
	} else {
		if got := saltedSum(p.Salt, g.level(tree, levels-1)); !bytes.Equal(got, root) {
			return Superblock{}, nil, fmt.Errorf("root hash of %s does not match: the tree gives %x, expected %x", hashName, got, root)
		}
		for i := levels - 1; i >= 0; i-- {
			lv := g.level(tree, i)
			if i < levels-1 {
				up := g.level(tree, i+1)
				for j := 0; int64(j)*hb < int64(len(lv)); j++ {
					sum := saltedSum(p.Salt, lv[int64(j)*hb:int64(j+1)*hb])
					if !bytes.Equal(sum, up[j*digestSize:(j+1)*digestSize]) {
						return Superblock{}, nil, fmt.Errorf("hash block %d of %s (tree level %d) does not match its hash", g.levelStart[i]+int64(j), hashName, i)
					}
				}
			}
			// Digests beyond the last child must be zero, as veritysetup writes them.
			var used uint64
			if i == 0 {
				used = sb.DataBlocks
			} else {
				used = g.levelSize[i-1]
			}
			if pad := lv[used*digestSize:]; len(bytes.Trim(pad, "\x00")) != 0 {
				return Superblock{}, nil, fmt.Errorf("hash block %d of %s (tree level %d) has non-zero padding", g.levelStart[i]+int64(g.levelSize[i])-1, hashName, i)
			}
		}
		leaves = g.level(tree, 0)
	}
	return sb, leaves, nil
}

// Verify checks the whole tree at hashOffset against root, top down as
// the kernel does, then every data block against its leaf. The error names
// the first block that does not match.
func Verify(ctx context.Context, data io.ReaderAt, hash io.ReaderAt, hashOffset int64, root []byte) error {
	dataName := nameOf(data, "the data")
	sb, leaves, err := verifyTree(hash, hashOffset, root)
	if err != nil {
		return err
	}
	p := sb.params()
	if err := ctxErr(ctx); err != nil {
		return err
	}
	got := make([]byte, sb.DataBlocks*digestSize)
	if err := hashLeaves(ctx, data, dataName, sb.DataBlocks, p.DataBlockSize, p.Salt, got); err != nil {
		return err
	}
	for i := uint64(0); i < sb.DataBlocks; i++ {
		if !bytes.Equal(got[i*digestSize:(i+1)*digestSize], leaves[i*digestSize:(i+1)*digestSize]) {
			return fmt.Errorf("data block %d of %s does not match its hash", i, dataName)
		}
	}
	return nil
}
