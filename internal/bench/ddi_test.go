package bench

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDDIQuick runs the DDI bake bench's quick case: two rows with measured
// times, the signed one against the unsigned plain bake.
func TestDDIQuick(t *testing.T) {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mksquashfs not found (CI=true): install squashfs-tools (scripts/deps)")
		}
		t.Skip("mksquashfs not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows, title, _, err := DDI(ctx, "", t.TempDir(), true, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || !strings.Contains(title, "ddi") {
		t.Fatalf("rows %+v title %q", rows, title)
	}
	for _, r := range rows {
		if r.Strata <= 0 || r.Peer <= 0 || !strings.Contains(r.Note, "ratio") {
			t.Errorf("row %+v", r)
		}
	}
	if !strings.Contains(rows[1].Note, "verity share") {
		t.Errorf("signed row lacks the verity share: %q", rows[1].Note)
	}
}

// TestDDIBench runs the full DDI bench when STRATA_BENCH_DDI is set (make
// bench runs it via strata-bench).
func TestDDIBench(t *testing.T) {
	if os.Getenv("STRATA_BENCH_DDI") == "" {
		t.Skip("set STRATA_BENCH_DDI=1 to run")
	}
	rows, _, _, err := DDI(context.Background(), "", t.TempDir(), false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + Table(rows))
}
