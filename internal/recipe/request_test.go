package recipe

import (
	"testing"

	"github.com/stratalinux/strata/internal/bake"
	"github.com/stratalinux/strata/internal/imageclass"
)

// TestRequest checks the bake request a recipe makes: name, version,
// architecture and class are the recipe's; its release settings apply
// unless the user gave their own.
func TestRequest(t *testing.T) {
	r, err := Parse("tool.yaml", []byte(minimal+"release:\n  os: flatcar\n  scope: system\n  reload-manager: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	res := Resolved{Version: "1.2.3"}
	user := bake.Request{Format: "erofs", OutDir: "/out", Epoch: 7, MaxSize: 99, NoLint: true}
	got := r.Request(user, res, "arm64", "/work/root")
	if got.Dir != "/work/root" || got.Name != "tool" || got.Version != "1.2.3" || got.Arch != "arm64" || got.Class != imageclass.Sysext ||
		got.Format != "erofs" || got.OutDir != "/out" || got.Epoch != 7 || got.MaxSize != 99 || !got.NoLint {
		t.Errorf("request %+v", got)
	}
	if got.OS != "flatcar" || got.Scope != "system" || got.Reload == nil || *got.Reload {
		t.Errorf("recipe release settings not applied: OS %q Scope %q Reload %v", got.OS, got.Scope, got.Reload)
	}
	on := true
	user.OS, user.Scope, user.Reload = "debian:12", "portable", &on
	got = r.Request(user, res, "arm64", "/work/root")
	if got.OS != "debian:12" || got.Scope != "portable" || got.Reload == nil || !*got.Reload {
		t.Errorf("user's settings lost: OS %q Scope %q Reload %v", got.OS, got.Scope, got.Reload)
	}
	// The request is a plan the bake accepts as is.
	if _, err := bake.NewPlan(got, bake.Tree{}); err != nil {
		t.Errorf("NewPlan: %v", err)
	}
	// The recipe's setting must not alias the recipe: changing the
	// request leaves the recipe as it was.
	user.Reload = nil
	got = r.Request(user, res, "arm64", "/work/root")
	*got.Reload = true
	if *r.Release.ReloadManager {
		t.Error("Request shares the recipe's ReloadManager")
	}
}
