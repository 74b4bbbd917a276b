package recipe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func writeRecipe(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	file := writeRecipe(t, "tool.yaml", minimal)
	r, err := Load(file)
	if err != nil || r.Name != "tool" {
		t.Fatalf("Load(file) = %v, %v", r, err)
	}
	r, err = Load("docker") // shipped
	if err != nil || r.Name != "docker" {
		t.Fatalf("Load(docker) = %v, %v", r, err)
	}
	big := writeRecipe(t, "big.yaml", minimal+"#"+strings.Repeat("x", MaxSize)+"\n")
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "recipe larger than") || !strings.HasPrefix(err.Error(), big) {
		t.Fatalf("oversized recipe: %v", err)
	}
	if _, err := Load("no-such-recipe"); err == nil || err.Error() != "no-such-recipe: not a directory, a recipe file or a shipped recipe (strata bake --list shows them)" {
		t.Fatalf("unknown: %v", err)
	}
	// A file wins over a shipped recipe of the same name.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if r, err := Load("docker"); err != nil || r.Name != "tool" {
		t.Fatalf("file named docker: %v, %v", r, err)
	}
}

func TestLoadAllAndCheckName(t *testing.T) {
	file := writeRecipe(t, "tool.yaml", minimal)
	rs, err := LoadAll([]string{file, "docker"})
	if err != nil || len(rs) != 2 || rs[0].Name != "tool" || rs[1].Name != "docker" {
		t.Fatalf("LoadAll = %v, %v", rs, err)
	}
	copyOf := writeRecipe(t, "again.yaml", minimal)
	if _, err := LoadAll([]string{file, copyOf}); err == nil || err.Error() != copyOf+": recipe tool given twice" {
		t.Fatalf("twice: %v", err)
	}
	one := rs[:1]
	for _, c := range []struct {
		rs   []*Recipe
		name string
		ok   bool
	}{{one, "", true}, {one, "tool", true}, {one, "other", false}, {rs, "", true}, {rs, "tool", false}} {
		err := CheckName(c.rs, c.name)
		if (err == nil) != c.ok {
			t.Errorf("CheckName(%d recipes, %q) = %v", len(c.rs), c.name, err)
		}
		if err != nil && err.Error() != "--name "+c.name+": a recipe names its image itself (tool)" {
			t.Errorf("CheckName message: %v", err)
		}
	}
}

func TestArchesFor(t *testing.T) {
	r, err := Parse("tool.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"all": "arm64,x86-64", "x86-64": "x86-64", "amd64": "x86-64", "aarch64": "arm64"} {
		got, err := ArchesFor(r, flag)
		slices.Sort(got)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("ArchesFor(%q) = %v, %v; want %s", flag, got, err, want)
		}
	}
	if _, err := ArchesFor(r, "riscv64"); err == nil || !strings.Contains(err.Error(), "tool: no build for riscv64 (the recipe has ") {
		t.Errorf("missing arch: %v", err)
	}
	if _, err := ArchesFor(r, "vax"); err == nil {
		t.Error("unknown architecture accepted")
	}
}

func TestRunJobs(t *testing.T) {
	jobs := make([]Job, 6)
	for i := range jobs {
		jobs[i].Arch = string(rune('a' + i))
	}
	var running, peak atomic.Int32
	outs, err := RunJobs(context.Background(), jobs, 2, func(_ context.Context, j Job) (string, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		return "baked " + j.Arch, nil
	})
	if err != nil || strings.Join(outs, ",") != "baked a,baked b,baked c,baked d,baked e,baked f" {
		t.Fatalf("RunJobs = %v, %v", outs, err)
	}
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("%d jobs ran at once; want at most 2", p)
	}

	// The real failure is reported, not the cancellations it causes in the jobs after it.
	boom := errors.New("bake c failed")
	outs, err = RunJobs(context.Background(), jobs, 1, func(ctx context.Context, j Job) (string, error) {
		if j.Arch == "c" {
			return "", boom
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		return j.Arch, nil
	})
	if !errors.Is(err, boom) || errors.Is(err, context.Canceled) {
		t.Fatalf("error %v; want only %v", err, boom)
	}
	// Jobs start in any order; each result is its own job's, and the failed one has none.
	for i, o := range outs {
		if o != "" && o != jobs[i].Arch || i == 2 && o != "" {
			t.Fatalf("results %q", outs)
		}
	}

	// A cancelled context alone comes back as the cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RunJobs(ctx, jobs, 0, func(context.Context, Job) (string, error) { return "", nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
