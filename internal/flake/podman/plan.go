// Package podman is the podman engine of flakes: it decides the podman
// command lines for a launch (pure: Plan), assembles and caches delta
// images, copies host includes into a container, and finally hands the
// terminal to podman by exec, so stdin/stdout/stderr stream directly,
// signals reach podman's own proxy and the application's exit code is the
// launcher's.
package podman

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/stratalinux/strata/internal/flake"
)

// Mode is how an instance lives.
type Mode int

const (
	// OneShot: a fresh container per launch, removed on exit.
	OneShot Mode = iota
	// Resume: one long-lived container per instance; each launch execs
	// the target in it.
	Resume
	// Attach: one container per instance, created with the first launch's
	// arguments; later launches re-attach to it (or start it again).
	Attach
)

func (m Mode) String() string {
	return [...]string{"one-shot", "resume", "attach"}[m]
}

// Labels put on every flake container so "podman ps --filter" finds them.
const (
	LabelName     = "io.flake.name"
	LabelInstance = "io.flake.instance"
	LabelStrata   = "io.strata.flake"
	LabelDeltaKey = "io.strata.flake.delta"
	// LabelSystemfiles marks an assembled delta image whose tree has
	// flake-pilot's /systemfiles script.
	LabelSystemfiles = "io.strata.flake.systemfiles"
)

// keepAlive is the resumed container's main process: a sleep any image's
// sleep accepts (flake-pilot's "4294967295d" needs GNU sleep).
var keepAlive = []string{"sleep", "2147483647"}

// Spec is everything a launch decision needs, as values.
type Spec struct {
	Name      string // flake name
	Instance  string // @NAME without "@", or "" (one-shot: random id)
	Container *flake.Container
	Include   flake.Include
	Args      []string // the application's arguments
	// TTY is true when stdin and stdout are both terminals.
	TTY bool
	// Options are the invocation's %options.
	Options map[string]string
	// Image is the image to instantiate (the delta cache's tag, or the
	// registered name).
	Image string
	// Getenv expands %VAR in podman options; Exists tells whether a host
	// path exists (for %ignore_missing_volume_path).
	Getenv func(string) string
	Exists func(string) bool
	// Systemfiles: the image ships flake-pilot's /systemfiles script
	// (known for assembled delta images).
	Systemfiles bool
}

// ModeOf reads the registration's runtime.
func ModeOf(c *flake.Container) Mode {
	if c.Runtime == nil {
		return OneShot
	}
	switch {
	case c.Runtime.Resume:
		return Resume
	case c.Runtime.Attach:
		return Attach
	}
	return OneShot
}

// Target is the program to run in the container ("/" or "": the image's
// entrypoint).
func Target(c *flake.Container, name string) string {
	return c.TargetAppPath
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)

// ContainerName is flake-NAME-ID, made safe for podman's name rules; an
// id that had to be changed gets a short hash so two ids never collide.
func ContainerName(name, id string) string {
	s := "flake-" + name + "-" + id
	safe := nameUnsafe.ReplaceAllString(s, "_")
	if safe != s {
		h := sha256.Sum256([]byte(s))
		safe += "-" + hex.EncodeToString(h[:4])
	}
	return safe
}

// InstanceID is the id part of the container name: the @NAME, or
// "default" for resume/attach flakes (one instance per flake), or random
// for one-shots.
func InstanceID(instance string, m Mode, random string) string {
	switch {
	case instance != "":
		return instance
	case m == OneShot:
		return random
	}
	return "default"
}

// ttyFlags are stripped from registered options: the launcher decides -i
// and -t from the actual streams (flake-pilot's template writes "-ti",
// which breaks pipes).
var ttyFlags = map[string]bool{"-t": true, "-i": true, "-ti": true, "-it": true, "--tty": true, "--interactive": true,
	"--tty=true": true, "--interactive=true": true}

var varRef = regexp.MustCompile(`%([A-Za-z_][A-Za-z0-9_]*)`)

// UserOptions turns runtime.podman entries into argv: each entry splits at
// its first space into at most two arguments (flake-pilot), one leading
// backslash is dropped, %VAR is expanded from the environment, TTY flags
// are dropped, and with %ignore_missing_volume_path a volume whose host
// path is missing is skipped (both --volume=a:b and --volume a:b).
func UserOptions(s Spec) []string {
	if s.Container.Runtime == nil {
		return nil
	}
	var out []string
	for _, entry := range s.Container.Runtime.Podman {
		entry = strings.TrimPrefix(entry, `\`)
		parts := strings.SplitN(entry, " ", 2)
		for i := range parts {
			parts[i] = expand(parts[i], s.Getenv)
		}
		if ttyFlags[parts[0]] && len(parts) == 1 {
			continue
		}
		if _, ok := s.Options["ignore_missing_volume_path"]; ok && s.Exists != nil {
			if host, isVol := volumeHost(parts); isVol && !s.Exists(host) {
				continue
			}
		}
		out = append(out, parts...)
	}
	return out
}

func volumeHost(parts []string) (string, bool) {
	var spec string
	switch {
	case (parts[0] == "-v" || parts[0] == "--volume") && len(parts) == 2:
		spec = strings.TrimSpace(parts[1])
	case strings.HasPrefix(parts[0], "--volume="):
		spec = strings.TrimPrefix(parts[0], "--volume=")
	case strings.HasPrefix(parts[0], "-v="):
		spec = strings.TrimPrefix(parts[0], "-v=")
	default:
		return "", false
	}
	host, _, _ := strings.Cut(spec, ":")
	if !strings.HasPrefix(host, "/") {
		return "", false // a named volume
	}
	return host, true
}

func expand(s string, getenv func(string) string) string {
	if getenv == nil {
		return s
	}
	for range 10 {
		n := varRef.ReplaceAllStringFunc(s, func(m string) string {
			if v := getenv(m[1:]); v != "" {
				return v
			}
			return m
		})
		if n == s {
			break
		}
		s = n
	}
	return s
}

// CreateArgs is "podman create|run …" up to and including the image and
// command, for a container of the given mode and name.
func CreateArgs(verb string, s Spec, mode Mode, cname string) []string {
	args := []string{verb, "--name", cname,
		"--label", LabelStrata + "=1", "--label", LabelName + "=" + s.Name}
	if s.Instance != "" {
		args = append(args, "--label", LabelInstance+"="+s.Instance)
	}
	if mode == OneShot {
		args = append(args, "--rm")
	}
	if mode != Resume {
		args = append(args, "-i")
		if s.TTY {
			args = append(args, "-t")
		}
	}
	args = append(args, UserOptions(s)...)
	target := Target(s.Container, s.Name)
	switch {
	case mode == Resume:
		args = append(args, "--stop-signal", "SIGKILL", "--entrypoint", keepAlive[0], s.Image)
		return append(args, keepAlive[1:]...)
	case target != "" && target != "/":
		args = append(args, "--entrypoint", target)
	}
	args = append(args, s.Image)
	return append(args, s.Args...)
}

// ExecArgs is "podman exec" of the target in a resumed container.
func ExecArgs(s Spec, cname string) ([]string, error) {
	target := Target(s.Container, s.Name)
	if target == "" || target == "/" {
		return nil, fmt.Errorf("flake %s: resume mode needs a target_app_path (register with --target)", s.Name)
	}
	args := []string{"exec", "-i"}
	if s.TTY {
		args = append(args, "-t")
	}
	args = append(args, cname, target)
	return append(args, s.Args...), nil
}

// DeltaKey names the cached assembly of base + layers + delta by the
// image ids it was made from: any re-pulled input gives a new key.
func DeltaKey(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// DeltaTag is the local tag of a cached delta assembly.
func DeltaTag(name, key string) string {
	return "localhost/strata-flake-" + strings.ToLower(nameUnsafe.ReplaceAllString(name, "_")) + ":" + key
}

// Exists is os.Stat for Spec.Exists.
func Exists(p string) bool { _, err := os.Stat(p); return err == nil }
