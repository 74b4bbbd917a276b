package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/exttest"
)

// lockstepRoot is a scratch root with two transfers from local
// directories: a offers 1.0, 2.0 and 3.0, b only 1.0 and 2.0.
func lockstepRoot(t *testing.T) (root string, su func(args ...string) result) {
	t.Helper()
	root = t.TempDir()
	files := map[string]string{
		"srv/a/a-1.0.img": "a1", "srv/a/a-2.0.img": "a2", "srv/a/a-3.0.img": "a3",
		"srv/b/b-1.0.img": "b1", "srv/b/b-2.0.img": "b2",
	}
	for _, n := range []string{"a", "b"} {
		files["etc/sysupdate.d/"+n+".transfer"] = `[Transfer]
ChangeLog=https://example.org/@v/changes.html
AppStream=https://example.org/app.xml

[Source]
Type=regular-file
Path=/srv/` + n + `
MatchPattern=` + n + `-@v.img

[Target]
Type=regular-file
Path=/opt/` + n + `
MatchPattern=` + n + `-@v.img
`
	}
	exttest.Write(t, root, files)
	return root, func(args ...string) result {
		return strata(t, nil, append([]string{"sysupdate", "--root", root}, args...)...)
	}
}

// systemd-sysupdate's JSON shapes: list prints version strings, newest
// first, only versions every transfer has; list VERSION prints the
// update set's flags and one content row per transfer.
func TestSysupdateJSONLikeSystemd(t *testing.T) {
	root, su := lockstepRoot(t)
	if res := su("list", "--json=short"); res.code != 0 || strings.TrimSpace(res.stdout) != `{"current":null,"all":["2.0","1.0"],"appstreamUrls":["https://example.org/app.xml"]}` {
		t.Fatalf("list --json before: %+v", res)
	}
	if res := su("list", "3.0"); res.code != 1 || !strings.Contains(res.stderr, "update '3.0' not found") {
		t.Fatalf("3.0 is offered by one transfer only, so it is no update set: %+v", res)
	}
	if res := su("update"); res.code != 0 || !strings.Contains(res.stderr, "Successfully installed update '2.0'.") {
		t.Fatalf("update: %+v", res)
	}
	if res := su("list", "--json=short"); res.code != 0 || strings.TrimSpace(res.stdout) != `{"current":"2.0","all":["2.0","1.0"],"appstreamUrls":["https://example.org/app.xml"]}` {
		t.Fatalf("list --json after: %+v", res)
	}
	res := su("list", "2.0", "--json=short")
	var detail struct {
		Version                                                             string
		Newest, Available, Installed, Partial, Pending, Obsolete, Protected bool
		Incomplete                                                          bool
		ChangelogURLs                                                       []string `json:"changelogUrls"`
		Contents                                                            []map[string]any
	}
	if err := json.Unmarshal([]byte(res.stdout), &detail); err != nil || res.code != 0 {
		t.Fatalf("list 2.0 --json: %+v %v", res, err)
	}
	if detail.Version != "2.0" || !detail.Newest || !detail.Available || !detail.Installed ||
		detail.Partial || detail.Pending || detail.Obsolete || detail.Protected || detail.Incomplete {
		t.Fatalf("flags of the installed newest version: %s", res.stdout)
	}
	if len(detail.ChangelogURLs) != 1 || detail.ChangelogURLs[0] != "https://example.org/2.0/changes.html" {
		t.Fatalf("changelogUrls: %s", res.stdout)
	}
	if len(detail.Contents) != 2 || detail.Contents[0]["type"] != "regular-file" ||
		detail.Contents[0]["path"] != filepath.Join(root, "opt/a/a-2.0.img") || detail.Contents[1]["path"] != filepath.Join(root, "opt/b/b-2.0.img") {
		t.Fatalf("contents: %s", res.stdout)
	}
	fi, _ := os.Stat(filepath.Join(root, "opt/a/a-2.0.img"))
	if m, ok := detail.Contents[0]["mode"].(float64); !ok || uint32(m) != uint32(fi.Mode().Perm()&0o775) {
		t.Fatalf("mode: %s", res.stdout)
	}
	if mt, ok := detail.Contents[0]["mtime"].(float64); !ok || int64(mt)/1e6 != fi.ModTime().Unix() {
		t.Fatalf("mtime: %s", res.stdout)
	}
	if !strings.HasPrefix(res.stdout, `{"version":"2.0","newest":true,"available":true,"installed":true,"partial":false,"pending":false,"obsolete":false,"protected":false,"incomplete":false,"changelogUrls":[`) {
		t.Fatalf("key order: %s", res.stdout)
	}
	res = su("list", "1.0", "--json=short")
	if !strings.Contains(res.stdout, `"newest":false,"available":true,"installed":false`) {
		t.Fatalf("list 1.0: %+v", res)
	}
	if res := su("vacuum", "--json=short"); res.code != 0 || strings.TrimSpace(res.stdout) != `{"removed":0,"disabledTransfers":0}` {
		t.Fatalf("vacuum --json: %+v", res)
	}
	if res := su("check-new", "--json=short"); res.code != 0 || strings.TrimSpace(res.stdout) != `{"available":null}` {
		t.Fatalf("check-new --json: %+v", res)
	}
}

func TestSysupdateFeatureJSONLikeSystemd(t *testing.T) {
	root, su := lockstepRoot(t)
	exttest.Write(t, root, map[string]string{
		"etc/sysupdate.d/devel.feature": "[Feature]\nDescription=Development tools\nAppStream=https://example.org/devel.xml\n",
		"etc/sysupdate.d/c.transfer": `[Transfer]
Features=devel

[Source]
Type=regular-file
Path=/srv/a
MatchPattern=a-@v.img

[Target]
Path=/opt/c
`,
	})
	if res := su("features", "--json=short"); res.code != 0 || strings.TrimSpace(res.stdout) != `{"features":["devel"]}` {
		t.Fatalf("features --json: %+v", res)
	}
	if res := su("features", "devel", "--json=short"); res.code != 0 || strings.TrimSpace(res.stdout) != `{"name":"devel","enabled":false,"description":"Development tools","appStream":"https://example.org/devel.xml","transfers":["c"]}` {
		t.Fatalf("features devel --json: %+v", res)
	}
}
