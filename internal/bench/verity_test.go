package bench

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// TestVerityBench runs the verity row on 128 MiB (STRATA_BENCH_VERITY=full:
// the 1 GiB row of make bench); the row itself fails unless Strata's hash
// file and root hash equal veritysetup's byte for byte.
func TestVerityBench(t *testing.T) {
	privtest.RequireTools(t, "veritysetup")
	full := os.Getenv("STRATA_BENCH_VERITY") == "full"
	rows, _, _, err := Verity(context.Background(), "", t.TempDir(), !full, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Strata <= 0 || rows[0].Peer <= 0 || !strings.Contains(rows[0].Note, "identical") {
		t.Fatalf("rows: %+v", rows)
	}
}

// TestInitrdBootBench runs the initrd boot row (six QEMU boots) when
// STRATA_BENCH_INITRD names a static strata binary.
func TestInitrdBootBench(t *testing.T) {
	bin := os.Getenv("STRATA_BENCH_INITRD")
	if bin == "" {
		t.Skip("set STRATA_BENCH_INITRD=/path/to/static/strata to run")
	}
	rows, _, _, err := InitrdBoot(context.Background(), bin, t.TempDir(), os.Getenv("STRATA_BENCH_QUICK") != "", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rows)
}
