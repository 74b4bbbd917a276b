package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stratalinux/strata/internal/omaha"
)

// TestAgentCLI runs `strata agent check --once` on a baked disk against an
// Omaha server that grants 2.0.0 once: install into B, "reboot" (a new
// boot id and --booted B), mark-good and the 3/2 report; status in between.
func TestAgentCLI(t *testing.T) {
	needOSTools(t)
	dir := t.TempDir()
	usr := filepath.Join(dir, "usr")
	writeFile := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(filepath.Join(usr, "lib/os-release"), "ID=strata\n")
	writeFile(filepath.Join(dir, "vmlinuz"), "kernel")
	disk := filepath.Join(dir, "disk.img")
	small := []string{"--usr-size", "8", "--root-size", "16", "--esp-size", "33", "--oem-size", "8"}
	if r := strata(t, nil, append([]string{"os", "bake", "--usr", usr, "--kernel", filepath.Join(dir, "vmlinuz"), "--version", "1.0.0", "--output", disk}, small...)...); r.code != 0 {
		t.Fatalf("bake: %s", r.stderr)
	}
	payload := filepath.Join(dir, "usr-2.0.0.raw")
	if r := strata(t, nil, "os", "payload", "--usr", usr, "--version", "2.0.0", payload); r.code != 0 {
		t.Fatalf("payload: %s", r.stderr)
	}
	pay, err := os.ReadFile(payload)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pay)
	var mu sync.Mutex
	var events []string
	granted := false
	var hs *httptest.Server
	hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Write(pay)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, err := omaha.DecodeBytes(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		a := req.Apps[0]
		for _, e := range a.Events {
			if !(e.Type == 3 && e.Result == 2 && e.PreviousVersion == "") {
				events = append(events, fmt.Sprintf("%d/%d%s", e.Type, e.Result, e.PreviousVersion))
			}
		}
		uc := `<updatecheck status="noupdate"></updatecheck>`
		if a.UpdateCheck != nil && !granted {
			granted = true
			uc = `<updatecheck status="ok"><urls><url codebase="` + hs.URL + `/pkg/"></url></urls><manifest version="2.0.0"><packages>` +
				fmt.Sprintf(`<package name="usr-2.0.0.raw" hash="" size="%d" required="true"></package>`, len(pay)) +
				`</packages><actions><action event="postinstall" sha256="` + base64.StdEncoding.EncodeToString(sum[:]) + `"></action></actions></manifest></updatecheck>`
		} else if a.UpdateCheck == nil {
			uc = ""
		}
		fmt.Fprintf(w, `<response protocol="3.0"><app appid="%s" status="ok">%s</app></response>`, a.ID, uc)
	}))
	defer hs.Close()

	root := filepath.Join(dir, "root")
	writeFile(filepath.Join(root, "etc/machine-id"), "0123456789abcdef0123456789abcdef\n")
	writeFile(filepath.Join(root, "etc/flatcar/update.conf"), "GROUP=stable\nSERVER=http://127.0.0.1:1/\n")
	writeFile(filepath.Join(root, "etc/strata/update.conf"), "SERVER="+hs.URL+"/v1/update/\n")
	writeFile(filepath.Join(root, "proc/sys/kernel/random/boot_id"), "00000000-0000-4000-8000-000000000001\n")
	ag := func(args ...string) result {
		t.Helper()
		return strata(t, nil, append(append([]string{"agent"}, args...), "--root", root, "--disk", disk)...)
	}
	r := ag("check", "--once", "--booted", "A")
	if r.code != 0 || !strings.Contains(r.stdout, "reboot needed") || !strings.Contains(r.stdout, "2.0.0 rebooting") {
		t.Fatalf("check --once: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if s := osStatus(t, disk); s.Next != "B" || s.Slots[1].Record == nil || s.Slots[1].Record.Version != "2.0.0" {
		t.Fatalf("after the update: %+v", s)
	}
	r = ag("status", "--json")
	var st struct {
		State, UpdateVersion, TargetSlot string
		PendingEvents                    int
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(r.stdout, "_", "")), &st); err != nil || r.code != 0 {
		t.Fatalf("status --json: %v %d %s", err, r.code, r.stdout)
	}
	if st.State != "rebooting" || st.UpdateVersion != "2.0.0" || st.TargetSlot != "B" || st.PendingEvents != 0 {
		t.Fatalf("status %+v", st)
	}
	writeFile(filepath.Join(root, "proc/sys/kernel/random/boot_id"), "00000000-0000-4000-8000-000000000002\n")
	r = ag("check", "--once", "--booted", "B")
	if r.code != 0 || !strings.Contains(r.stdout, "up to date (2.0.0)") {
		t.Fatalf("after reboot: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if s := osStatus(t, disk, "--booted", "B"); !s.Slots[1].Successful {
		t.Fatalf("B not marked good: %+v", s)
	}
	mu.Lock()
	got := strings.Join(events, " ")
	mu.Unlock()
	if got != "13/1 14/1 3/1 3/21.0.0" {
		t.Fatalf("events %q", got)
	}
	if r = ag("status"); r.code != 0 || !strings.Contains(r.stdout, "state:        idle") {
		t.Fatalf("status: %q", r.stdout)
	}
	// Bad invocations: one line, exit 1.
	for _, args := range [][]string{{"agent", "check"}, {"agent", "update"}} {
		r := strata(t, nil, args...)
		if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%v: %d %q", args, r.code, r.stderr)
		}
	}
	if r := strata(t, nil, "agent", "check", "--once", "--booted", "A", "--root", root); r.code != 1 || !strings.Contains(r.stderr, "--booted needs --disk") {
		t.Errorf("--booted without --disk: %d %q", r.code, r.stderr)
	}
}
