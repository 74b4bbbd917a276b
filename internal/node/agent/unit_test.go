package agent

import (
	"strings"
	"testing"
)

func TestUnit(t *testing.T) {
	keys := map[string]string{}
	section := ""
	for _, l := range strings.Split(Unit, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || l[0] == '#':
		case l[0] == '[':
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("unit line %q is not KEY=VALUE", l)
			}
			keys[section+"."+k] = v
		}
	}
	for k, want := range map[string]string{
		"Service.ExecStart":        "/usr/bin/strata agent",
		"Service.StateDirectory":   "strata/agent", // = StateDir
		"Unit.ConditionPathExists": "!/usr/.noupdate",
		"Install.WantedBy":         "multi-user.target",
	} {
		if keys[k] != want {
			t.Errorf("%s=%q, want %q", k, keys[k], want)
		}
	}
	if "/var/lib/"+keys["Service.StateDirectory"] != StateDir {
		t.Errorf("StateDirectory does not match StateDir %s", StateDir)
	}
}
