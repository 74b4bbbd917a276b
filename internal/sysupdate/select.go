package sysupdate

import (
	"fmt"
	"path/filepath"

	"github.com/stratalinux/strata/internal/sdparse"
)

// NoDefinitionsError says that the selected definition directories hold no transfer.
type NoDefinitionsError struct{ Component string }

func (e *NoDefinitionsError) Error() string {
	if e.Component != "" {
		return fmt.Sprintf("no transfer definitions for component '%s' found", e.Component)
	}
	return "no transfer definitions found"
}

// LoadSelected reads the definitions systemd-sysupdate's --definitions= and --component= select
// under root: an explicit directory (taken as is, outside root), else the component's directories
// (the default ones without a component). No transfer at all is a *NoDefinitionsError.
func LoadSelected(root, component, definitions string) (*Definitions, error) {
	var dirs []string
	if definitions != "" {
		abs, err := filepath.Abs(definitions)
		if err != nil {
			return nil, err
		}
		dirs, root = []string{abs}, "/"
	} else {
		dirs = DefinitionDirs(component)
	}
	defs, err := Load(root, dirs, HostSpecifiers(root))
	if err != nil {
		return nil, err
	}
	if len(defs.Transfers) == 0 {
		return nil, &NoDefinitionsError{Component: component}
	}
	return defs, nil
}

// VerifyOverride is the Engine's Verify for --verify=flag: the flag when given, else "no" when
// SYSTEMD_SYSUPDATE_NO_VERIFY=1, else nil (each transfer's own Verify=). getenv is os.Getenv
// outside tests.
func VerifyOverride(flag string, getenv func(string) string) (*bool, error) {
	if flag == "" && getenv("SYSTEMD_SYSUPDATE_NO_VERIFY") == "1" {
		flag = "no"
	}
	if flag == "" {
		return nil, nil
	}
	b, err := sdparse.Boolean(flag)
	if err != nil {
		return nil, fmt.Errorf("--verify=%s: not a boolean", flag)
	}
	return &b, nil
}

// CheckFreshness is the Engine's CheckFreshness: on unless SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS=0.
func CheckFreshness(getenv func(string) string) bool {
	return getenv("SYSTEMD_SYSUPDATE_VERIFY_FRESHNESS") != "0"
}

// FeatureTransfers lists, in definition order, the transfers that name the feature in Features= or
// RequisiteFeatures= (what `features NAME` shows as Transfers).
func (d *Definitions) FeatureTransfers(feature string) []string {
	out := []string{}
	for _, t := range d.Transfers {
		for _, n := range append(append([]string{}, t.Features...), t.RequisiteFeatures...) {
			if n == feature {
				out = append(out, t.ID)
				break
			}
		}
	}
	return out
}
