package startup

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRun measures with /bin/true standing in for strata and the peer, so
// the test checks the plumbing (floor built and run, every case timed)
// without building strata.
func TestRun(t *testing.T) {
	work := t.TempDir()
	rows, err := Run(context.Background(), Config{StrataBin: "/bin/true", PeerBin: "/bin/true", WorkDir: work, Reps: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	for _, r := range rows {
		if r.Peer <= 0 || r.Strata <= 0 || r.Floor <= 0 {
			t.Fatalf("row %+v has an unmeasured column", r)
		}
	}
	fi, err := os.Stat(filepath.Join(work, "startup-floor", "floor"))
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("floor binary: %v %v", fi, err)
	}
	if dst, err := os.Readlink(filepath.Join(work, "startup-alias", "systemd-sysext")); err != nil || dst != "/bin/true" {
		t.Fatalf("alias: %q %v", dst, err)
	}
	// Without a peer the peer column stays empty and nothing fails.
	rows, err = Run(context.Background(), Config{StrataBin: "/bin/true", PeerBin: filepath.Join(work, "none"), WorkDir: work, Reps: 1})
	if err != nil || rows[0].Peer != 0 || rows[0].Strata <= 0 {
		t.Fatalf("no peer: %+v %v", rows, err)
	}
}

// TestRunFailingCommand: a command that fails is an error naming it, not
// a silent figure.
func TestRunFailingCommand(t *testing.T) {
	_, err := Run(context.Background(), Config{StrataBin: "/bin/false", WorkDir: t.TempDir(), Reps: 1})
	if err == nil {
		t.Fatal("a failing strata was timed")
	}
}
