package merge

import (
	"errors"
	"fmt"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagepolicy"
	"github.com/stratalinux/strata/internal/sdparse"
)

// Flags are the command-line options of systemd-sysext/confext that shape
// a merge. An empty string means the option was not given.
type Flags struct {
	Force         bool
	Mutable       string // --mutable=
	Noexec        string // --noexec=
	ImagePolicy   string // --image-policy=
	AlwaysRefresh string // --always-refresh=
}

// Options are the merge settings after flags, environment and the
// configuration file have been combined.
type Options struct {
	Hierarchies    []string
	Mode           Mode
	Force          bool
	Noexec         *bool
	OverlayOptions *string
	OSRelease      string
	AlwaysRefresh  bool
	Policy         imagepolicy.Policy
}

// ErrMutableHelp is returned for --mutable=help: the caller lists the modes.
var ErrMutableHelp = errors.New("mutable help")

// ResolveOptions combines the command line, the environment (through
// lookupEnv, os.LookupEnv in production) and the configuration file with
// systemd's precedence: command line over environment over file. It
// returns the warnings systemd prints for values it ignores. It touches
// nothing.
func ResolveOptions(c imageclass.Class, f Flags, lookupEnv func(string) (string, bool), cfg ConfigFile) (Options, []string, error) {
	var warnings []string
	o := Options{Hierarchies: c.DefaultHierarchies(), Mode: MutableNo, Force: f.Force}
	if v, ok := lookupEnv(c.HierarchiesEnv()); ok {
		hs, err := ParseHierarchies(c.HierarchiesEnv(), v)
		if err != nil {
			return Options{}, nil, err
		}
		o.Hierarchies = hs
	}
	if v, ok := lookupEnv(c.OverlayOptionsEnv()); ok {
		o.OverlayOptions = &v
	}
	o.OSRelease, _ = lookupEnv("SYSTEMD_OS_RELEASE")

	modeSet := false
	if v, ok := lookupEnv(c.MutableEnv()); ok {
		m, err := ParseMode(v)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("Failed to parse %s environment variable value '%s'. Ignoring.", c.MutableEnv(), v))
		} else {
			o.Mode, modeSet = m, true
		}
	}
	if f.Mutable != "" {
		if f.Mutable == "help" {
			return Options{}, warnings, ErrMutableHelp
		}
		m, err := ParseMode(f.Mutable)
		if err != nil {
			return Options{}, warnings, fmt.Errorf("failed to parse argument to --mutable=: %w", err)
		}
		o.Mode, modeSet = m, true
	}
	if !modeSet && cfg.Mutable != nil {
		o.Mode = *cfg.Mutable
	}

	policy := c.DefaultImagePolicy()
	if cfg.ImagePolicy != nil {
		policy = *cfg.ImagePolicy
	}
	if f.ImagePolicy != "" {
		policy = f.ImagePolicy
	}
	var err error
	if o.Policy, err = imagepolicy.Parse(policy); err != nil {
		return Options{}, warnings, fmt.Errorf("--image-policy: %w", err)
	}
	if f.Noexec != "" {
		b, err := sdparse.Boolean(f.Noexec)
		if err != nil {
			return Options{}, warnings, fmt.Errorf("failed to parse --noexec= argument %q: want a boolean", f.Noexec)
		}
		o.Noexec = &b
	}
	if f.AlwaysRefresh != "" {
		b, err := sdparse.Boolean(f.AlwaysRefresh)
		if err != nil {
			return Options{}, warnings, fmt.Errorf("failed to parse --always-refresh= argument %q: want a boolean", f.AlwaysRefresh)
		}
		o.AlwaysRefresh = b
	}
	return o, warnings, nil
}
