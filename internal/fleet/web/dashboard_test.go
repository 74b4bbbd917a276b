package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stratalinux/strata/internal/fleet"
	fleetsim "github.com/stratalinux/strata/internal/fleet/sim"
	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// rolloutUnderway makes a group with a rollout in progress: some nodes
// updated, some failed, some waiting.
func rolloutUnderway(t *testing.T) *harness {
	h := newHarness(t, "")
	p := fleet.DefaultPolicy()
	p.MaxConcurrent = 15
	h.setup(t, p)
	st, err := fleetsim.Run(context.Background(), fleetsim.Config{Server: h.http.URL, Instances: 300, Concurrency: 4, AppID: osAppID,
		Version: "1.0.0", Checks: 1200, FailureRate: 0.15, Duration: 30 * time.Second, Seed: 7})
	if err != nil || st.Errors != 0 {
		t.Fatalf("simulation: %v %+v", err, st)
	}
	h.event(t, "0000000000000000000000000000012b", "1.0.0", omaha.Event{Type: 3, Result: 0, ErrorCode: "44"})
	return h
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	return string(b)
}

func TestDashboardPages(t *testing.T) {
	h := rolloutUnderway(t)
	base := h.http.URL
	if body := get(t, base+"/ui/"); !strings.Contains(body, "strata-os") || !strings.Contains(body, "prod") {
		t.Fatalf("apps page: %s", body)
	}
	group := get(t, base+"/ui/apps/strata-os/groups/prod")
	for _, want := range []string{"<svg", "2.0.0", "1.0.0", "rollout progress", "succeeded"} {
		if !strings.Contains(group, want) {
			t.Errorf("group page lacks %q", want)
		}
	}
	list := get(t, base+"/ui/apps/strata-os/groups/prod/instances?status=complete&page=1")
	if !strings.Contains(list, "instances · page 1") || strings.Contains(list, `class="st st3"`) || !strings.Contains(list, `class="st st4"`) {
		t.Errorf("filtered instance list: %s", list)
	}
	if body := get(t, base+"/ui/apps/strata-os/groups/prod/instances?page=3"); !strings.Contains(body, "page 3 of") {
		t.Errorf("paging")
	}
	inst := get(t, base+"/ui/apps/strata-os/instances/0000000000000000000000000000012b")
	if !strings.Contains(inst, "RollbackError") {
		t.Errorf("timeline lacks the rollback: %s", inst)
	}
	if body := get(t, base+"/ui/activity"); !strings.Contains(body, "rollout of 2.0.0 started") {
		t.Errorf("activity: %s", body)
	}
	res, _ := http.Get(base + "/ui/apps/nope")
	if res.StatusCode != 404 {
		t.Errorf("unknown app page: %d", res.StatusCode)
	}
	res.Body.Close()
}

// TestDashboardInChromium renders the pages in headless Chromium and keeps
// screenshots in the test's artifact directory (go test -artifacts).
func TestDashboardInChromium(t *testing.T) {
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		privtest.Missing(t, "chromium not installed (scripts/deps installs it)")
		return
	}
	h := rolloutUnderway(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.NoFirstRun,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	out := t.ArtifactDir()
	shot := func(name, url, waitFor string, check func(string) error) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Steps(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(waitFor)))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: screenshot: %v", name, err)
		}
		path := filepath.Join(out, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", path)
		if err := check(text); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	contains := func(words ...string) func(string) error {
		return func(s string) error {
			for _, w := range words {
				if !strings.Contains(s, w) {
					return fmt.Errorf("page text lacks %q", w)
				}
			}
			return nil
		}
	}
	base := h.http.URL
	// A node holds a reboot slot: the FleetLock table shows it.
	if code, body := flPost(t, base, "pre-reboot", "true", flBody("0000000000000000000000000000012b", "workers")); code != 200 {
		t.Fatalf("pre-reboot: %d %s", code, body)
	}
	shot("apps", base+"/ui/", "#reboot-locks", contains("strata-os", "docker", "Reboot locks", "workers", "0000000000000000000000000000012b since"))
	holders, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#reboot-locks tbody tr")].map(r => [...r.cells].slice(0, 3).map(c => c.textContent).join("|"))`))
	if err != nil || len(holders) != 1 || holders[0] != "workers|1|1" {
		t.Errorf("reboot lock rows in the DOM: %q %v, want [workers|1|1]", holders, err)
	}
	// The server's bare address leads to the dashboard.
	shot("root", base+"/", "table", contains("strata-os", "docker"))
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != base+"/ui/" {
		t.Errorf("opening %s/ ended on %q (%v), want %s/ui/", base, loc, err, base)
	}
	shot("group", base+"/ui/apps/strata-os/groups/prod", "svg.chart", contains("Versions", "Status", "Rollout of 2.0.0"))
	// The charts drew bars: count the SVG rects in the browser's DOM.
	rects, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect").length`))
	if err != nil || rects < 3 {
		t.Errorf("chart bars in the DOM: %d %v", rects, err)
	}
	shot("instances", base+"/ui/apps/strata-os/groups/prod/instances", "#instances", contains("instances · page 1"))
	// Filter through the form, as a user would.
	if _, err := chromedp.Run(ctx, chromedp.Steps(chromedp.SetValue(chromedp.CSS(`select[name=status]`), "complete"),
		chromedp.Click(chromedp.CSS(`.filter button`)), chromedp.WaitVisible(chromedp.CSS("#total")))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.Contains(loc, "status=complete") {
		t.Errorf("filter form did not apply: %s", loc)
	}
	shot("instance", base+"/ui/apps/strata-os/instances/0000000000000000000000000000012b", "#timeline", contains("update failed", "RollbackError"))
	shot("activity", base+"/ui/activity", "table", contains("rollout of 2.0.0 started"))
}

// The rollout legend and the counter line under it give the same failed
// count, also once the failed node has checked in again and left the
// error status.
func TestGroupLegendAgreesWithCounters(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	h.check(t, "m1", "1.0.0", "")
	h.event(t, "m1", "1.0.0", omaha.Event{Type: 3, Result: 0, ErrorCode: "268435477"})
	h.check(t, "m1", "1.0.0", "") // granted again: no longer in error
	h.check(t, "m2", "1.0.0", "")
	page := get(t, h.http.URL+"/ui/apps/strata-os/groups/prod")
	legend := regexp.MustCompile(`<p class="legend">.*?</p>`).FindString(page)
	counters := regexp.MustCompile(`<p class="counters">.*?</p>`).FindString(page)
	count := func(s, word string) string {
		m := regexp.MustCompile(`\b` + word + ` (\d+)`).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("no %q in %q", word, s)
		}
		return m[1]
	}
	if l, c := count(legend, "failed"), count(counters, "failed"); l != c || c != "1" {
		t.Errorf("legend says failed %s, counters failed %s (want 1 and 1)\n%s\n%s", l, c, legend, counters)
	}
	if l, c := count(legend, "updating"), count(counters, "in progress"); l != c || c != "2" {
		t.Errorf("legend says updating %s, counters in progress %s (want 2 and 2)", l, c)
	}
}
