package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func treeSum(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			m[rel], _ = fileSum(p)
		}
		return err
	})
	return m
}

func TestGenerateTreeDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := GenerateTree(d, 300, 3<<20, 1); err != nil {
			t.Fatal(err)
		}
	}
	sa, sb := treeSum(t, a), treeSum(t, b)
	if len(sa) != 300 || len(sa) != len(sb) {
		t.Fatalf("%d vs %d files", len(sa), len(sb))
	}
	for k, v := range sa {
		if sb[k] != v {
			t.Fatalf("%s differs", k)
		}
	}
}

// TestBakeBench runs the real bake benchmark when STRATA_BENCH_BAKE names
// a strata binary (it takes minutes; make bench runs it via strata-bench).
func TestBakeBench(t *testing.T) {
	bin := os.Getenv("STRATA_BENCH_BAKE")
	if bin == "" {
		t.Skip("set STRATA_BENCH_BAKE=/path/to/strata to run")
	}
	rows, err := Bake(context.Background(), bin, t.TempDir(), os.Getenv("STRATA_BENCH_QUICK") != "", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + Table(rows))
}
