package flake

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/stratalinux/strata/internal/atomicfile"
)

// Defaults from flake-pilot's common/src/defaults.rs.
const (
	SystemFlakesDir = "/usr/share/flakes"
	SystemConfig    = "/etc/flakes.yml"
)

// Registry is one place registrations live: the system's (flakes_dir
// from /etc/flakes.yml, default /usr/share/flakes) or a user's
// (~/.config/flakes). Root prefixes every system path (a scratch root for
// --root and tests); user paths are taken as they are.
type Registry struct {
	Root string
	User bool
	Home string
}

// Global is the generic section of /etc/flakes.yml (~/.config/flakes.yml).
type Global struct {
	Generic struct {
		FlakesDir         string `yaml:"flakes_dir"`
		PodmanIDsDir      string `yaml:"podman_ids_dir"`
		FirecrackerIDsDir string `yaml:"firecracker_ids_dir"`
		PodmanStorageConf string `yaml:"podman_storage_conf"`
	} `yaml:"generic"`
}

func (r Registry) sys(p string) string {
	if r.Root == "" || r.Root == "/" {
		return p
	}
	// ".." stops at the root, as it would inside it: a flakes_dir of
	// "/../../x" must not leave a --root.
	return filepath.Join(r.Root, filepath.Clean("/"+p))
}

func (r Registry) home() (string, error) {
	if r.Home != "" {
		return r.Home, nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("user mode needs a home directory: %w", err)
	}
	return h, nil
}

// ConfigFile is the global settings file this registry honours.
func (r Registry) ConfigFile() (string, error) {
	if r.User {
		h, err := r.home()
		if err != nil {
			return "", err
		}
		return filepath.Join(h, ".config", "flakes.yml"), nil
	}
	return r.sys(SystemConfig), nil
}

// ReadGlobal reads the global settings (absent file: defaults).
func (r Registry) ReadGlobal() (Global, error) {
	var g Global
	path, err := r.ConfigFile()
	if err != nil {
		return g, err
	}
	data, err := readBounded(path)
	if errors.Is(err, os.ErrNotExist) {
		return g, nil
	}
	if err != nil {
		return g, err
	}
	if err := yaml.Unmarshal(data, &g); err != nil {
		return g, fmt.Errorf("%s:%s", path, yamlErr(err))
	}
	return g, nil
}

// Dir is the flakes directory holding NAME.yaml and NAME.d/.
func (r Registry) Dir() (string, error) {
	g, err := r.ReadGlobal()
	if err != nil {
		return "", err
	}
	if r.User {
		if g.Generic.FlakesDir != "" {
			return g.Generic.FlakesDir, nil
		}
		h, err := r.home()
		if err != nil {
			return "", err
		}
		return filepath.Join(h, ".config", "flakes"), nil
	}
	if d := g.Generic.FlakesDir; d != "" {
		if !filepath.IsAbs(d) {
			return "", fmt.Errorf("%s: generic.flakes_dir %q must be an absolute path", SystemConfig, d)
		}
		return r.sys(d), nil
	}
	return r.sys(SystemFlakesDir), nil
}

// Registration is what Register writes.
type Registration struct {
	// App is the host path of the command (its base name is the flake's
	// name), Launcher the strata binary it links to.
	App      string
	Launcher string
	Config   *Config
}

// reservedNames are Strata's own multi-call names; a flake may not take
// one.
var reservedNames = map[string]bool{
	"strata": true, "systemd-sysext": true, "systemd-confext": true, "systemd-sysupdate": true, "flake-ctl": true,
}

// IsReservedName reports whether name is one of the binary's own names.
func IsReservedName(name string) bool {
	return reservedNames[name] || strings.HasPrefix(name, "strata-") || strings.HasPrefix(name, "systemd-")
}

// ValidateName checks a flake name (the app's base name).
func ValidateName(name string) error {
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") || len(name) > 200 {
		return fmt.Errorf("invalid flake name %q", name)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == '+':
		default:
			return fmt.Errorf("invalid flake name %q: only letters, digits and . _ - + are allowed", name)
		}
	}
	if IsReservedName(name) {
		return fmt.Errorf("flake name %q is reserved for strata itself", name)
	}
	return nil
}

// IsLauncherLink reports whether target (a symlink's content) points at a
// flake launcher: the strata binary, or flake-pilot's pilots.
func IsLauncherLink(target, launcher string) bool {
	if launcher != "" && target == launcher {
		return true
	}
	switch filepath.Base(target) {
	case "strata", "podman-pilot", "firecracker-pilot":
		return true
	}
	return false
}

// Register writes NAME.yaml, NAME.d/ and the app link, all or nothing:
// the YAML and the link are each renamed into place without replacing
// anything, and a failure removes what this call created.
func (r Registry) Register(reg Registration) (err error) {
	if !filepath.IsAbs(reg.App) {
		return fmt.Errorf("--app %s: must be an absolute path", reg.App)
	}
	app := filepath.Clean(reg.App)
	name := filepath.Base(app)
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("--app %s: %w", reg.App, err)
	}
	if reg.Config == nil || reg.Config.Engine() == "" {
		return errors.New("registration has no engine section")
	}
	if !filepath.IsAbs(reg.Launcher) {
		return fmt.Errorf("launcher %q must be an absolute path", reg.Launcher)
	}
	appOnHost := app
	if !r.User {
		appOnHost = r.sys(app)
	}
	if fi, err := os.Lstat(appOnHost); err == nil {
		if fi.Mode()&os.ModeSymlink != 0 {
			if t, _ := os.Readlink(appOnHost); IsLauncherLink(t, reg.Launcher) {
				return fmt.Errorf("--app %s: already registered as a flake (strata flake remove %s first)", app, name)
			}
		}
		return fmt.Errorf("--app %s: the path exists and is not a flake launcher link; choose another --app", app)
	}
	dir, err := r.Dir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create flakes directory: %w", err)
	}
	yamlPath := filepath.Join(dir, name+".yaml")
	if _, err := os.Lstat(yamlPath); err == nil {
		return fmt.Errorf("flake %s is already registered (%s); remove it first", name, yamlPath)
	}
	data, err := Marshal(reg.Config)
	if err != nil {
		return err
	}
	if _, err := Merge([]string{yamlPath}, [][]byte{data}); err != nil {
		return fmt.Errorf("internal: the registration does not read back: %w", err)
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	tmpYAML, err := writeTemp(dir, name+".yaml", data)
	if err != nil {
		return err
	}
	undo = append(undo, func() { os.Remove(tmpYAML) })
	dropDir := filepath.Join(dir, name+".d")
	if err := os.Mkdir(dropDir, 0o755); err == nil {
		undo = append(undo, func() { os.Remove(dropDir) })
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", dropDir, err)
	}
	appDir := filepath.Dir(appOnHost)
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		return fmt.Errorf("--app %s: %w", app, err)
	}
	tmpLink := filepath.Join(appDir, "."+name+".flake-"+randHex())
	if err := os.Symlink(reg.Launcher, tmpLink); err != nil {
		return fmt.Errorf("--app %s: %w", app, err)
	}
	undo = append(undo, func() { os.Remove(tmpLink) })
	if err := renameNoReplace(tmpYAML, yamlPath); err != nil {
		return fmt.Errorf("write %s: %w", yamlPath, err)
	}
	undo = append(undo, func() { os.Remove(yamlPath) })
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := renameNoReplace(tmpLink, appOnHost); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("--app %s: the path appeared while registering; nothing was registered", app)
		}
		return fmt.Errorf("--app %s: %w", app, err)
	}
	return syncDir(appDir)
}

// Remove deletes the app link, NAME.yaml and NAME.d/. app overrides the
// host path recorded in the YAML; the link must point at a launcher unless
// force is set.
func (r Registry) Remove(name, app string, force bool) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	dir, err := r.Dir()
	if err != nil {
		return err
	}
	yamlPath := filepath.Join(dir, name+".yaml")
	cfg, _, lerr := Load(dir, name)
	if lerr != nil {
		// A broken drop-in must not keep a flake from being removed: the
		// main file alone still names the app.
		if data, err := readBounded(yamlPath); err == nil {
			if c, err := Merge([]string{yamlPath}, [][]byte{data}); err == nil {
				cfg, lerr = c, nil
			}
		}
	}
	if lerr != nil && !force && app == "" {
		return fmt.Errorf("remove %s: %w (give --app PATH, or --force)", name, lerr)
	}
	if app == "" && cfg != nil {
		app = cfg.HostApp()
	}
	if app != "" {
		if filepath.Base(app) != name {
			return fmt.Errorf("--app %s is not flake %s", app, name)
		}
		p := app
		if !r.User {
			p = r.sys(app)
		}
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink == 0 && !force:
			return fmt.Errorf("remove %s: %s is not a flake launcher link; left it alone (--force removes it)", name, app)
		default:
			if t, _ := os.Readlink(p); !IsLauncherLink(t, "") && !force {
				return fmt.Errorf("remove %s: %s points at %s, not a flake launcher; left it alone (--force removes it)", name, app, t)
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove %s: %w", app, err)
			}
			_ = syncDir(filepath.Dir(p))
		}
	}
	if err := os.Remove(yamlPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(filepath.Join(dir, name+".d")); err != nil {
		return err
	}
	return syncDir(dir)
}

// Entry is one registered flake in a listing.
type Entry struct {
	Name     string  `json:"name"`
	Engine   string  `json:"engine"`
	Target   string  `json:"target"`
	HostApp  string  `json:"host_app_path"`
	Image    string  `json:"image"`
	Config   string  `json:"config"`
	Error    string  `json:"error,omitempty"`
	Settings *Config `json:"-"`
}

// List reads every NAME.yaml in the registry; a broken one is listed with
// its error rather than hiding the rest.
func (r Registry) List() ([]Entry, error) {
	dir, err := r.Dir()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		ent := Entry{Name: n, Config: filepath.Join(dir, e.Name())}
		cfg, _, err := Load(dir, n)
		if err != nil {
			ent.Error = err.Error()
		} else {
			ent.Engine, ent.Target, ent.HostApp, ent.Image, ent.Settings = cfg.Engine(), cfg.Target(), cfg.HostApp(), cfg.Image(), cfg
		}
		out = append(out, ent)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lookup finds a flake by name: the system registry first, then the
// caller's (flake-pilot's order).
func Lookup(root, name string) (*Config, Registry, error) {
	if err := ValidateName(name); err != nil {
		return nil, Registry{}, err
	}
	var firstErr error
	for _, r := range []Registry{{Root: root}, {Root: root, User: true}} {
		dir, err := r.Dir()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		cfg, _, err := Load(dir, name)
		if errors.Is(err, ErrNotRegistered) {
			continue
		}
		if err != nil {
			return nil, r, err
		}
		return cfg, r, nil
	}
	if firstErr != nil {
		return nil, Registry{}, firstErr
	}
	return nil, Registry{}, fmt.Errorf("%s: %w", name, ErrNotRegistered)
}

// Registered reports cheaply whether name has a registration (the
// multi-call dispatch asks this for every unknown argv[0]).
func Registered(root, name string) bool {
	if ValidateName(name) != nil {
		return false
	}
	for _, r := range []Registry{{Root: root}, {Root: root, User: true}} {
		dir, err := r.Dir()
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name+".yaml")); err == nil {
			return true
		}
	}
	return false
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeTemp writes data to a fresh temp file in dir and fsyncs it.
func writeTemp(dir, base string, data []byte) (string, error) {
	return atomicfile.Temp(dir, base, bytes.NewReader(data), 0o644)
}

// WriteFileAtomic replaces path with data (atomicfile.Write, mode 0644).
func WriteFileAtomic(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o644)
}

func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if _, serr := os.Lstat(to); serr == nil {
			return unix.EEXIST
		}
		return os.Rename(from, to)
	}
	return err
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
