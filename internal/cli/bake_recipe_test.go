package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/recipe/recipetest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

func writeRecipe(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tool.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBakeRecipeAllArchesReproducible(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs", "unsquashfs")
	u := recipetest.New(t)
	rp := writeRecipe(t, recipetest.Tool)
	var sums [2]map[string]string
	for i := range sums {
		out := filepath.Join(t.TempDir(), strings.Repeat("o", i+1))
		stdout, stderr, code := runCLI(t, "bake", rp, "--arch", "all", "--version", "latest", "--base-url", u.URL, "-o", out, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var res []struct {
			Path, SHA256, Arch, Version string
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("%v: %s", err, stdout)
		}
		if len(res) != 2 {
			t.Fatalf("want 2 images, got %s", stdout)
		}
		sums[i] = map[string]string{}
		for _, r := range res {
			if filepath.Base(r.Path) != "tool-1.10.0-"+r.Arch+".raw" || fileSHA(t, r.Path) != r.SHA256 {
				t.Errorf("bad result %+v", r)
			}
			sums[i][r.Arch] = r.SHA256
		}
		ents, _ := os.ReadDir(out)
		if len(ents) != 4 {
			t.Errorf("output holds %d entries, want 4 (2 images + 2 .sha256)", len(ents))
		}
		// Check the image contents for arm64.
		img := filepath.Join(out, "tool-1.10.0-arm64.raw")
		list, err := exec.Command("unsquashfs", "-lls", img).CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"usr/bin/tool", "usr/bin/toolctl", "usr/lib/systemd/system/multi-user.target.d/10-tool-service.conf", "usr/lib/extension-release.d/extension-release.tool"} {
			if !strings.Contains(string(list), want) {
				t.Errorf("image lacks %s", want)
			}
		}
		rel, _ := exec.Command("unsquashfs", "-cat", img, "usr/lib/extension-release.d/extension-release.tool").Output()
		if !strings.Contains(string(rel), "ARCHITECTURE=arm64\n") || !strings.Contains(string(rel), "EXTENSION_RELOAD_MANAGER=1\n") {
			t.Errorf("release:\n%s", rel)
		}
	}
	if sums[0]["x86-64"] != sums[1]["x86-64"] || sums[0]["arm64"] != sums[1]["arm64"] || sums[0]["arm64"] == sums[0]["x86-64"] {
		t.Errorf("not reproducible: %v vs %v", sums[0], sums[1])
	}
}

func TestBakeRecipeMismatchLeavesNothing(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	u := recipetest.New(t)
	p := "/dl.example.com/v1.9.0/toolctl-amd64"
	u.Set(p, []byte("tampered"))
	rp := writeRecipe(t, recipetest.Tool)
	out := t.TempDir()
	_, stderr, code := runCLI(t, "bake", rp, "--arch", "x86-64", "--version", "1.9.0", "--base-url", u.URL, "-o", out)
	if code == 0 || !strings.Contains(stderr, "SHA256 mismatch") || !strings.Contains(stderr, "toolctl-amd64") || !strings.Contains(stderr, "expected ") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	// HTTP errors name the URL.
	_, stderr, code = runCLI(t, "bake", rp, "--arch", "x86-64", "--version", "7.0.0", "--base-url", u.URL, "-o", out)
	if code == 0 || !strings.Contains(stderr, "not found upstream") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestBakeList(t *testing.T) {
	stdout, stderr, code := runCLI(t, "bake", "--list")
	if code != 0 {
		t.Fatal(stderr)
	}
	for _, n := range []string{"docker", "containerd", "docker-compose", "kubernetes", "k3s", "wasmtime", "cilium", "tailscale", "crun", "etcd"} {
		if !strings.Contains(stdout, "\n"+n+" ") {
			t.Errorf("--list lacks %s:\n%s", n, stdout)
		}
	}
}

func TestBakeRecipeError(t *testing.T) {
	rp := writeRecipe(t, "name: tool\nversions: {github: x}\n")
	_, stderr, code := runCLI(t, "bake", rp)
	if code == 0 || !strings.Contains(stderr, "tool.yaml:2: versions.github") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, stderr, code = runCLI(t, "bake", "no-such-recipe")
	if code == 0 || !strings.Contains(stderr, "--list") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestBakeSeveralRecipesInParallel(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs")
	u := recipetest.New(t)
	dir := t.TempDir()
	r1 := filepath.Join(dir, "tool.yaml")
	r2 := filepath.Join(dir, "tool2.yaml")
	os.WriteFile(r1, []byte(recipetest.Tool), 0o644)
	os.WriteFile(r2, []byte(strings.Replace(recipetest.Tool, "name: tool\n", "name: tool2\n", 1)), 0o644)
	out := t.TempDir()
	stdout, stderr, code := runCLI(t, "bake", r1, r2, "--arch", "all", "--base-url", u.URL, "-o", out, "-j", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Fields(stdout)
	if len(lines) != 4 {
		t.Fatalf("want 4 images, got %q", stdout)
	}
	for _, want := range []string{"tool-1.10.0-x86-64.raw", "tool-1.10.0-arm64.raw", "tool2-1.10.0-x86-64.raw", "tool2-1.10.0-arm64.raw"} {
		if _, err := os.Stat(filepath.Join(out, want)); err != nil {
			t.Error(err)
		}
	}
}
