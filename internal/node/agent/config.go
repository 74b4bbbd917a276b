// Package agent is the node agent: an Omaha client that takes OS updates
// from the fleet server under its rollout policy (update_engine's role),
// installs them into the inactive /usr slot, reports update_engine's
// events, and reboots under the fleet's reboot coordination (locksmith's
// role). The decisions (config, requests, the state machine) are pure;
// Agent carries them out and journals its state on disk so a restarted
// agent resumes where it stopped.
package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/rootfs"
)

// ConfigFiles are read in this order, each overriding the keys of the
// ones before it: Flatcar's /usr defaults, then /etc (update_engine's
// and locksmithd's precedence), then Strata's own file.
var ConfigFiles = []string{"/usr/share/flatcar/update.conf", "/etc/flatcar/update.conf", "/etc/strata/update.conf"}

// maxConfigBytes bounds each config file; real ones are a few lines.
const maxConfigBytes = 64 << 10

// DefaultAppID is the OS app update_engine reports (Flatcar's), which
// strata serve's OS app uses too.
const DefaultAppID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"

// Config is the agent's configuration after the files were merged.
type Config struct {
	Server   string // SERVER=, the Omaha URL; "" or "disabled" turns updates off
	Group    string // GROUP=, sent as track (default stable)
	Alias    string // MACHINE_ALIAS=
	AppID    string // STRATA_APPID= or FLATCAR_RELEASE_APPID=
	Strategy coord.Strategy
	Window   coord.Window
	// EtcdEndpoints are LOCKSMITHD_ENDPOINT= (or ETCD_ENDPOINTS=), comma separated.
	EtcdEndpoints []string
	EtcdCAFile    string // LOCKSMITHD_ETCD_CAFILE=
	EtcdCertFile  string // LOCKSMITHD_ETCD_CERTFILE=
	EtcdKeyFile   string // LOCKSMITHD_ETCD_KEYFILE=
	EtcdUsername  string // LOCKSMITHD_ETCD_USERNAME=
	EtcdPassword  string // LOCKSMITHD_ETCD_PASSWORD=
	LockGroup     string // LOCKSMITHD_GROUP=, the semaphore's group ("" default)
	FleetLockURL  string // FLEETLOCK_URL=, the FleetLock server's base URL
	// HealthChecks are STRATA_HEALTH_CHECK= command lines (";;" separated)
	// and HealthUnits STRATA_HEALTH_UNITS= unit names (space separated)
	// that must pass before a new slot is marked good.
	HealthChecks []string
	HealthUnits  []string
	// PollInterval is STRATA_POLL_INTERVAL= (a Go duration, default
	// update_engine's 45 min); a server's PollInterval overrides it.
	PollInterval time.Duration
	// InitialDelay is STRATA_INITIAL_DELAY= (a Go duration): how long the
	// daemon waits after it starts before its first regular check,
	// update_engine's 7 min ±5, by default at most PollInterval; 0 checks
	// at once. `agent check --once` never waits.
	InitialDelay time.Duration
	// ExtensionApps are STRATA_EXTENSION_APPS=: extensions updated over
	// Omaha as their own apps, under their group's rollout policy.
	ExtensionApps []ExtensionApp
	// RebootCommand is STRATA_REBOOT_COMMAND=, used when PID 1 is not systemd.
	RebootCommand string
	// Sources names the files that were read, lowest precedence first.
	Sources []string
}

// DefaultPollInterval is update_engine's check interval.
const DefaultPollInterval = 45 * time.Minute

// DefaultInitialDelay is update_engine's wait before its first check
// after it starts (update_check_scheduler.cc, kTimeoutInitialInterval).
const DefaultInitialDelay = 7 * time.Minute

// Disabled reports whether updates are off (no server, or SERVER=disabled
// as Flatcar documents it).
func (c Config) Disabled() bool { return c.Server == "" || c.Server == "disabled" }

// ParseValues reads one update.conf: KEY=VALUE lines as systemd's
// EnvironmentFile= and update_engine read them; # comments, blank lines,
// optional "export ", and single or double quotes around the value.
func ParseValues(name string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxConfigBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			return nil, fmt.Errorf("%s line %d: %q is not KEY=VALUE", name, n, line)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// Layer is one config file's content.
type Layer struct {
	Name string
	Data []byte
}

// ParseConfig merges the layers (lowest precedence first) and interprets
// the keys. Unknown keys are ignored, as update_engine does.
func ParseConfig(layers []Layer) (Config, error) {
	vals := map[string]string{}
	var c Config
	for _, l := range layers {
		m, err := ParseValues(l.Name, l.Data)
		if err != nil {
			return Config{}, err
		}
		for k, v := range m {
			vals[k] = v
		}
		c.Sources = append(c.Sources, l.Name)
	}
	get := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := vals[k]; ok {
				return v
			}
		}
		return ""
	}
	c.Server = get("SERVER")
	if !c.Disabled() {
		u, err := url.Parse(c.Server)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("SERVER=%q is not an http(s) URL (like https://fleet.example.org/v1/update/, or SERVER=disabled)", c.Server)
		}
	}
	c.Group = get("GROUP")
	if c.Group == "" {
		c.Group = "stable"
	}
	c.Alias = get("MACHINE_ALIAS")
	c.AppID = get("STRATA_APPID", "FLATCAR_RELEASE_APPID")
	if c.AppID == "" {
		c.AppID = DefaultAppID
	}
	s, err := coord.ParseStrategy(get("REBOOT_STRATEGY"))
	if err != nil {
		return Config{}, err
	}
	for _, e := range strings.Split(get("LOCKSMITHD_ENDPOINT", "LOCKSMITHD_ETCD_ENDPOINTS", "ETCD_ENDPOINTS", "ETCD_ENDPOINT"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.EtcdEndpoints = append(c.EtcdEndpoints, e)
		}
	}
	c.Strategy = s.Resolve(len(c.EtcdEndpoints) > 0)
	c.Window, err = coord.ParseWindow(get("LOCKSMITHD_REBOOT_WINDOW_START", "REBOOT_WINDOW_START"), get("LOCKSMITHD_REBOOT_WINDOW_LENGTH", "REBOOT_WINDOW_LENGTH"), time.Local)
	if err != nil {
		return Config{}, err
	}
	c.EtcdCAFile = get("LOCKSMITHD_ETCD_CAFILE", "ETCD_CAFILE")
	c.EtcdCertFile = get("LOCKSMITHD_ETCD_CERTFILE", "ETCD_CERTFILE")
	c.EtcdKeyFile = get("LOCKSMITHD_ETCD_KEYFILE", "ETCD_KEYFILE")
	c.EtcdUsername = get("LOCKSMITHD_ETCD_USERNAME", "ETCD_USERNAME")
	c.EtcdPassword = get("LOCKSMITHD_ETCD_PASSWORD", "ETCD_PASSWORD")
	c.LockGroup = get("LOCKSMITHD_GROUP")
	c.FleetLockURL = get("FLEETLOCK_URL", "STRATA_FLEETLOCK_URL")
	if c.Strategy == coord.FleetLock && c.FleetLockURL == "" {
		return Config{}, fmt.Errorf("REBOOT_STRATEGY=fleetlock needs FLEETLOCK_URL= (the FleetLock server's base URL)")
	}
	for _, h := range strings.Split(get("STRATA_HEALTH_CHECK"), ";;") {
		if h = strings.TrimSpace(h); h != "" {
			c.HealthChecks = append(c.HealthChecks, h)
		}
	}
	c.HealthUnits = strings.Fields(get("STRATA_HEALTH_UNITS"))
	c.PollInterval = DefaultPollInterval
	if v := get("STRATA_POLL_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("STRATA_POLL_INTERVAL=%q: want a positive duration like 45m", v)
		}
		c.PollInterval = d
	}
	c.InitialDelay = min(DefaultInitialDelay, c.PollInterval)
	if v := get("STRATA_INITIAL_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return Config{}, fmt.Errorf("STRATA_INITIAL_DELAY=%q: want a duration like 7m, or 0 to check at start", v)
		}
		c.InitialDelay = d
	}
	c.RebootCommand = get("STRATA_REBOOT_COMMAND")
	if c.ExtensionApps, err = ParseExtensionApps(get("STRATA_EXTENSION_APPS")); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads ConfigFiles under root (missing files are skipped)
// and parses them.
func LoadConfig(root rootfs.Root) (Config, error) {
	var layers []Layer
	for _, p := range ConfigFiles {
		b, err := rootfs.ReadFile(root.Path(), p, maxConfigBytes)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Config{}, fmt.Errorf("read %s: %w", root.Join(p), err)
		}
		layers = append(layers, Layer{Name: root.Join(p), Data: b})
	}
	return ParseConfig(layers)
}
