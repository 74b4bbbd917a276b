package register

import (
	"fmt"
	"path/filepath"

	"github.com/stratalinux/strata/internal/flake"
)

// Where is which registry a command works on, as its flags say: --root
// and --user. The defaults they fall back on are resolved here, so that
// every command (strata flake, flake-ctl) and a test agree on them.
type Where struct {
	Root string // --root; "" falls back on $STRATA_FLAKE_ROOT
	User bool   // --user: the caller's registry (~/.config/flakes)
}

// RootEnv names the variable the launcher reads for the system
// registry's root.
const RootEnv = "STRATA_FLAKE_ROOT"

// Registry is the registry w names: the system registry's root is
// --root, else $STRATA_FLAKE_ROOT (what the launcher reads, so what is
// registered there also launches), else the machine's own.
func (w Where) Registry(getenv func(string) string) flake.Registry {
	root := w.Root
	if root == "" {
		root = getenv(RootEnv)
	}
	return flake.Registry{Root: root, User: w.User}
}

// VMImagesDir is where pulled VM components live for w: below the
// caller's home (home) for --user, else in the system registry's root.
func (w Where) VMImagesDir(getenv func(string) string, home string) string {
	if w.User {
		return filepath.Join(home, ".config", "flakes", "firecracker", "images")
	}
	return filepath.Join(w.Registry(getenv).Root, "/var/lib/firecracker/images")
}

// CallerName is the user a VM registration records when --run-as is not
// given: root for euid 0, else $USER, else the numeric uid.
func CallerName(euid int, getenv func(string) string) string {
	if euid == 0 {
		return "root"
	}
	if u := getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint(euid)
}
