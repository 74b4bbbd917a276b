package bench

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestEtcdLockQuick runs the semaphore bench's quick case against a real
// etcd: three rows with measured times, the contenders all served.
func TestEtcdLockQuick(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd not found (CI=true): install etcd-server (scripts/deps)")
		}
		t.Skip("etcd not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows, title, _, err := EtcdLock(ctx, "", t.TempDir(), true, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || !strings.Contains(title, "etcd") {
		t.Fatalf("rows %+v title %q", rows, title)
	}
	for _, r := range rows {
		if r.Strata <= 0 || !strings.Contains(r.Note, "p99") {
			t.Errorf("row %+v", r)
		}
	}
	if rows[0].Floor <= 0 || rows[1].Floor <= 0 {
		t.Errorf("no floor: %+v", rows[:2])
	}
}
