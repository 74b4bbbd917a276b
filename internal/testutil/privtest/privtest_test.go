package privtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A mount made in the namespace must not be visible outside it.
func TestInMountNSIsolates(t *testing.T) {
	marker := filepath.Join(os.TempDir(), "strata-privtest-isolation")
	if !InMountNS(t) {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), marker) {
			t.Fatalf("mount %s leaked out of the test namespace", marker)
		}
		_ = os.Remove(marker)
		return
	}
	if err := os.MkdirAll(marker, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", marker, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount: %v", err)
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), marker) {
		t.Fatalf("mount %s not visible inside the namespace", marker)
	}
}
