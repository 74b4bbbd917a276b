package osimage

import (
	"context"
	"io"

	"github.com/stratalinux/strata/internal/verity"
)

// The slot's tree is internal/verity's (veritysetup's format, 4 KiB blocks, SHA-256); these wrappers
// fix the parameters osimage uses.

const blockSize = 4096

// verityHashSize is the superblock plus tree bytes verityFormat writes for dataSize bytes.
func verityHashSize(dataSize int64) int64 { return verity.HashSize(dataSize, verity.Params{}) }

func verityFormat(ctx context.Context, data io.ReaderAt, dataSize int64, hash io.WriterAt, hashOffset int64, salt []byte, uuid [16]byte) (root []byte, hashSize int64, err error) {
	return verity.Format(ctx, data, dataSize, hash, hashOffset, verity.Params{Salt: salt, UUID: uuid})
}

// verityVerify checks every data block against the tree at hashOffset and the tree against root.
func verityVerify(ctx context.Context, data io.ReaderAt, _ int64, hash io.ReaderAt, hashOffset int64, _ []byte, root []byte) error {
	return verity.Verify(ctx, data, hash, hashOffset, root)
}
