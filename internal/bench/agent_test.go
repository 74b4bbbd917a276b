package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildStrata builds the strata binary as `make build` does.
func buildStrata(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/stratalinux/strata/cmd/strata")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build strata: %v\n%s", err, out)
	}
	return bin
}

func needBenchTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found (CI=true): scripts/deps installs it", n)
			}
			t.Skipf("%s not found", n)
		}
	}
}

// TestAgentBenchQuick runs both agent rows' quick cases against a real
// strata serve: the idle agent answered noupdate has a CPU figure per
// check and its memory, and the update arms slot B (checked on the disk
// inside AgentUpdate) in a measured time next to curl + sha256sum + dd.
func TestAgentBenchQuick(t *testing.T) {
	needBenchTools(t, "curl", "sha256sum", "dd")
	bin := buildStrata(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	rows, title, _, err := AgentIdle(ctx, bin, t.TempDir(), true, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || !strings.Contains(title, "idle") {
		t.Fatalf("idle: rows %+v title %q", rows, title)
	}
	r := rows[0]
	if r.Strata <= 0 || r.Peer <= 0 || r.Floor != time.Millisecond || !strings.Contains(r.Note, "MiB") {
		t.Errorf("idle row %+v", r)
	}
	// The CPU was divided by the checks the server answered: at least
	// the 20 of quick mode.
	var n int
	if _, err := fmt.Sscanf(r.Case, "CPU per check (%d checks)", &n); err != nil || n < 20 {
		t.Errorf("idle: case %q: want at least 20 checks counted (%v)", r.Case, err)
	}

	rows, title, _, err = AgentUpdate(ctx, bin, t.TempDir(), true, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || !strings.Contains(title, "update") {
		t.Fatalf("update: rows %+v title %q", rows, title)
	}
	if r := rows[0]; r.Strata <= 0 || r.Peer <= 0 || !strings.Contains(r.Note, "ratio") {
		t.Errorf("update row %+v", r)
	}
}

// TestProcReaders reads this test process's CPU and memory as the idle
// bench reads the agent's.
func TestProcReaders(t *testing.T) {
	pid := os.Getpid()
	cpu, err := threadsCPU(pid)
	if err != nil || cpu <= 0 {
		t.Fatalf("threadsCPU: %v, %v", cpu, err)
	}
	if _, err := statCPU(pid); err != nil {
		t.Fatal(err)
	}
	rss, hwm, anon, err := procMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss || anon <= 0 || anon > rss {
		t.Fatalf("rss %d hwm %d anon %d", rss, hwm, anon)
	}
}
