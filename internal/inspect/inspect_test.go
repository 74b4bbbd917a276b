package inspect

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratalinux/strata/internal/osrelease"
)

func TestDirImage(t *testing.T) {
	root := filepath.Join(t.TempDir(), "cfg")
	for p, c := range map[string]string{
		"etc/extension-release.d/extension-release.cfg": "ID=debian\nVERSION_ID=12\nARCHITECTURE=arm64\n",
		"etc/cfg.conf": "x=1\n",
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	host := osrelease.Release{"ID": "debian", "VERSION_ID": "12"}
	rep, err := Image(context.Background(), root, Options{Host: host, Arch: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Name != "cfg" || rep.Class != "confext" || rep.Format != "dir" || rep.Files.Files != 2 || rep.Compatible == nil || !rep.Compatible.OK {
		t.Errorf("%+v %+v", rep, rep.Compatible)
	}
	rep, _ = Image(context.Background(), root, Options{Host: osrelease.Release{"ID": "debian", "VERSION_ID": "13"}, Arch: "arm64"})
	if rep.Compatible.OK || rep.Compatible.Rule != osrelease.RuleVersionID {
		t.Errorf("%+v", rep.Compatible)
	}
}

func TestNotAnImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.raw")
	os.WriteFile(p, []byte("this is not a file system image at all, just text"), 0o644)
	if _, err := Image(context.Background(), p, Options{}); err == nil {
		t.Error("accepted garbage")
	}
}
