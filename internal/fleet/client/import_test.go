package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/fleet"
)

// writeRepo writes images and their SHA256SUMS; lie names a file whose
// listed hash is wrong.
func writeRepo(t *testing.T, files map[string]string, lie string) string {
	t.Helper()
	dir := t.TempDir()
	var sums strings.Builder
	names := []string{}
	for n := range files {
		names = append(names, n)
	}
	for _, n := range sortStrings(names) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(files[n]))
		if n == lie {
			h = sha256.Sum256([]byte("something else"))
		}
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(h[:]), n)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestImportAgainstTheRealServer(t *testing.T) {
	c, _ := serve(t)
	ctx := context.Background()
	dir := writeRepo(t, map[string]string{
		"flatcar-3.0.0-x86-64.raw": "os three",
		"docker-1.0-x86-64.raw":    "docker one",
		"docker-2.0-x86-64.raw":    "docker two",
	}, "")
	var events []string
	report := func(ev ImportEvent) {
		switch {
		case ev.CreatedApp != nil:
			events = append(events, "created "+ev.CreatedApp.Name+" "+string(ev.CreatedApp.Kind))
		case ev.Imported != nil:
			events = append(events, "imported "+ev.Imported.Name+" "+ev.Imported.Version)
		case ev.Existing != nil:
			events = append(events, "existing "+ev.Existing.Name+" "+ev.Existing.Version)
		}
	}
	if err := c.Import(ctx, dir, "http://127.0.0.1/repo/", "flatcar", report); err != nil {
		t.Fatal(err)
	}
	want := "created docker extension|imported docker 1.0|imported docker 2.0|created flatcar os|imported flatcar 3.0.0"
	if got := strings.Join(events, "|"); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	// The OS package carries the newest docker package.
	osPkgs := must(c.Packages(ctx, "flatcar"))(t)
	dockers := must(c.Packages(ctx, "docker"))(t)
	var newest fleet.Package
	for _, p := range dockers {
		if p.Version == "2.0" {
			newest = p
		}
	}
	if len(osPkgs) != 1 || len(osPkgs[0].Extras) != 1 || osPkgs[0].Extras[0] != newest.ID {
		t.Fatalf("OS package extras %v, want [%s]", osPkgs[0].Extras, newest.ID)
	}
	// A second import changes nothing and says so.
	events = nil
	if err := c.Import(ctx, dir, "http://127.0.0.1/repo/", "flatcar", report); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(events, "|"); got != "existing docker 1.0|existing docker 2.0|existing flatcar 3.0.0" {
		t.Fatalf("re-import events %s", got)
	}

	// A file that does not match SHA256SUMS is refused by name.
	bad := writeRepo(t, map[string]string{"tool-1.0-x86-64.raw": "tool"}, "tool-1.0-x86-64.raw")
	err := c.Import(ctx, bad, "http://127.0.0.1/repo/", "", nil)
	if err == nil || !strings.Contains(err.Error(), "tool-1.0-x86-64.raw: SHA-256") || !strings.Contains(err.Error(), "does not match SHA256SUMS") {
		t.Fatalf("lying manifest: %v", err)
	}
	if err := c.Import(ctx, t.TempDir(), "http://x/", "", nil); err == nil || !strings.Contains(err.Error(), "is it a `strata publish` repository?") {
		t.Fatalf("no manifest: %v", err)
	}
}
