package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/flake"
)

// The multi-call dispatch: strata's own names keep working, an unknown
// name falls back to the strata tree, and a registered name launches the
// flake (here with an engine that fails clearly, exit 125).
func TestFlakeDispatch(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("STRATA_FLAKE_ROOT", t.TempDir())
	t.Setenv("STRATA_FLAKE_NOEXEC", "1")
	t.Setenv("PATH", t.TempDir()) // no podman: the launch must say so
	var out, errb bytes.Buffer
	if code := Main([]string{"/usr/local/bin/not-a-flake", "--version"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), Version) {
		t.Fatalf("unknown name: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Main([]string{"/usr/bin/systemd-sysext", "--help"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.Contains(out.String(), "systemd-sysext") {
		t.Fatalf("systemd-sysext: %d %q", code, errb.String())
	}
	reg := flake.Registry{User: true, Home: home}
	app := filepath.Join(home, "bin", "tool")
	cfg := &flake.Config{Container: &flake.Container{Name: "localhost/none", HostAppPath: app, TargetAppPath: "/bin/tool"}}
	if err := reg.Register(flake.Registration{App: app, Launcher: "/usr/bin/strata", Config: cfg}); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code := Main([]string{app, "--version"}, os.Stdin, os.Stdout, &errb)
	if code != 125 || !strings.Contains(errb.String(), "podman is not installed") {
		t.Fatalf("registered name: %d %q", code, errb.String())
	}
	// The launcher's own argument errors are one clear line, exit 125.
	errb.Reset()
	if code := Main([]string{app, "@a/b"}, os.Stdin, os.Stdout, &errb); code != 125 || !strings.Contains(errb.String(), "invalid instance name") {
		t.Fatalf("bad instance: %d %q", code, errb.String())
	}
}
