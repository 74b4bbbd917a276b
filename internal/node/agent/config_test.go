package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/rootfs"
)

func TestParseConfigPrecedence(t *testing.T) {
	c, err := ParseConfig([]Layer{
		{"/usr/share/flatcar/update.conf", []byte("GROUP=stable\nSERVER=https://public.update.flatcar-linux.net/v1/update/\nREBOOT_STRATEGY=reboot\n")},
		{"/etc/flatcar/update.conf", []byte("# mine\nGROUP=beta\nREBOOT_STRATEGY=\"etcd-lock\"\nLOCKSMITHD_REBOOT_WINDOW_START='Thu 04:00'\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h\n")},
		{"/etc/strata/update.conf", []byte("export SERVER=http://fleet:8080/v1/update/\nLOCKSMITHD_ENDPOINT=http://10.0.0.1:2379, http://10.0.0.2:2379\nSTRATA_HEALTH_CHECK=true ;; test -e /etc/ok\nSTRATA_HEALTH_UNITS=sshd.service kubelet.service\nSTRATA_POLL_INTERVAL=10m\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "http://fleet:8080/v1/update/" || c.Group != "beta" || c.Strategy != coord.EtcdLock {
		t.Fatalf("server %q group %q strategy %q", c.Server, c.Group, c.Strategy)
	}
	if !c.Window.Weekly || c.Window.Day != time.Thursday || c.Window.Hour != 4 || c.Window.Length != time.Hour {
		t.Fatalf("window %+v", c.Window)
	}
	if !reflect.DeepEqual(c.EtcdEndpoints, []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}) {
		t.Fatalf("endpoints %q", c.EtcdEndpoints)
	}
	if !reflect.DeepEqual(c.HealthChecks, []string{"true", "test -e /etc/ok"}) || !reflect.DeepEqual(c.HealthUnits, []string{"sshd.service", "kubelet.service"}) {
		t.Fatalf("health %q %q", c.HealthChecks, c.HealthUnits)
	}
	if c.PollInterval != 10*time.Minute || c.AppID != DefaultAppID || c.InitialDelay != DefaultInitialDelay {
		t.Fatalf("poll %v initial delay %v app %s", c.PollInterval, c.InitialDelay, c.AppID)
	}
	// The first check waits at most one poll interval, unless told.
	for in, want := range map[string]time.Duration{
		"STRATA_POLL_INTERVAL=250ms\n":                        250 * time.Millisecond,
		"STRATA_INITIAL_DELAY=0\n":                            0,
		"STRATA_POLL_INTERVAL=1m\nSTRATA_INITIAL_DELAY=20m\n": 20 * time.Minute,
	} {
		if c, err := ParseConfig([]Layer{{"x", []byte(in)}}); err != nil || c.InitialDelay != want {
			t.Errorf("%q: initial delay %v %v, want %v", in, c.InitialDelay, err, want)
		}
	}
}

func TestParseConfigDefaultsAndErrors(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Disabled() || c.Group != "stable" || c.Strategy != coord.Reboot || c.PollInterval != DefaultPollInterval || !c.Window.IsZero() {
		t.Fatalf("defaults %+v", c)
	}
	if c, _ := ParseConfig([]Layer{{"x", []byte("SERVER=disabled\n")}}); !c.Disabled() {
		t.Fatal("SERVER=disabled is not disabled")
	}
	// best-effort resolves by whether etcd is configured.
	if c, _ := ParseConfig([]Layer{{"x", []byte("REBOOT_STRATEGY=best-effort\n")}}); c.Strategy != coord.Reboot {
		t.Fatalf("best-effort without etcd: %s", c.Strategy)
	}
	for in, want := range map[string]string{
		"REBOOT_STRATEGY=sometimes\n":                    "REBOOT_STRATEGY=\"sometimes\"",
		"LOCKSMITHD_REBOOT_WINDOW_START=04:00\n":         "set both or neither",
		"just words\n":                                   "x line 1",
		"STRATA_POLL_INTERVAL=often\n":                   "STRATA_POLL_INTERVAL",
		"STRATA_INITIAL_DELAY=-1m\n":                     "STRATA_INITIAL_DELAY",
		"REBOOT_STRATEGY=fleetlock\n":                    "FLEETLOCK_URL",
		"SERVER=fleet.example.org\n":                     "not an http(s) URL",
		"STRATA_EXTENSION_APPS=../etc\n":                 "not an extension name",
		"SERVER=a\n" + strings.Repeat("#", 70000) + "\n": "too long",
	} {
		_, err := ParseConfig([]Layer{{"x", []byte(in)}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: %v, want %q", in, err, want)
		}
	}
}

func TestLoadConfigUnderRoot(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "/usr/share/flatcar/update.conf", "GROUP=stable\nSERVER=http://usr/\n")
	write(t, dir, "/etc/flatcar/update.conf", "GROUP=alpha\n")
	root, err := rootfs.ParseRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server != "http://usr/" || c.Group != "alpha" || len(c.Sources) != 2 {
		t.Fatalf("%+v", c)
	}
}

func write(t *testing.T, root, p, data string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
