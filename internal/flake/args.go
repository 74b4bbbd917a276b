package flake

import (
	"fmt"
	"strconv"
	"strings"
)

// Invocation is a launcher command line split into what belongs to the
// launcher (instance, options) and what belongs to the application.
type Invocation struct {
	// Instance is the @NAME given, without the "@" ("" for none).
	Instance string
	// Options are the %options given, by name ("port" → "49300").
	Options map[string]string
	// Args are the application's arguments, in order.
	Args []string
}

// Has reports whether %name was given.
func (iv Invocation) Has(name string) bool { _, ok := iv.Options[name]; return ok }

// knownOptions are flake-pilot's %options (podman and firecracker pilots).
var knownOptions = map[string]bool{
	"progress": true, "interactive": true, "remove": true,
	"ignore_sync_error": true, "ignore_missing_volume_path": true, "port": true,
}

// MaxInstanceName bounds an instance name, "@" included (flake-pilot's
// limit).
const MaxInstanceName = 64

// SplitArgs separates launcher arguments from application arguments.
// Before the first "--", an argument starting with "@" names the instance
// and one starting with "%" is a launcher option (flake-pilot's
// conventions). Nothing after a "--" is looked at. The "--" itself is
// dropped only when it directly follows the launcher's own arguments (or
// comes first), so "app -- %s" passes "%s" and "app diff -- f" passes
// "diff -- f". getenv supplies FLAKE_INSTANCE and FLAKE_OPTS, which the
// command line overrides.
func SplitArgs(args []string, getenv func(string) string) (Invocation, error) {
	iv := Invocation{Options: map[string]string{}, Args: []string{}}
	if getenv != nil {
		if v := getenv("FLAKE_INSTANCE"); v != "" {
			if !strings.HasPrefix(v, "@") {
				v = "@" + v
			}
			if err := ValidateInstance(v); err != nil {
				return iv, fmt.Errorf("FLAKE_INSTANCE: %w", err)
			}
			iv.Instance = v[1:]
		}
		for _, o := range strings.Fields(getenv("FLAKE_OPTS")) {
			if err := iv.addOption(strings.TrimPrefix(o, "%")); err != nil {
				return iv, fmt.Errorf("FLAKE_OPTS: %w", err)
			}
		}
	}
	instanceSeen := false
	onlyOwn := true
	for i, a := range args {
		if a == "--" {
			if onlyOwn {
				iv.Args = append(iv.Args, args[i+1:]...)
			} else {
				iv.Args = append(iv.Args, args[i:]...)
			}
			return iv, nil
		}
		switch {
		case strings.HasPrefix(a, "@"):
			if err := ValidateInstance(a); err != nil {
				return iv, fmt.Errorf("%w (put -- before arguments meant for the application)", err)
			}
			// The first @NAME names the instance, as in flake-pilot.
			if !instanceSeen {
				iv.Instance = a[1:]
				instanceSeen = true
			}
		case strings.HasPrefix(a, "%"):
			if err := iv.addOption(a[1:]); err != nil {
				return iv, fmt.Errorf("%w (put -- before arguments meant for the application)", err)
			}
		default:
			onlyOwn = false
			iv.Args = append(iv.Args, a)
		}
	}
	return iv, nil
}

func (iv *Invocation) addOption(s string) error {
	name, val, _ := strings.Cut(s, ":")
	if !knownOptions[name] {
		return fmt.Errorf("unknown flake option %%%s (known: %%progress, %%interactive, %%remove, %%ignore_sync_error, %%ignore_missing_volume_path, %%port:N)", name)
	}
	if name == "port" {
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%%port:%s: want a port number 1-65535", val)
		}
	}
	iv.Options[name] = val
	return nil
}

// ValidateInstance checks an "@NAME" argument: 2–64 characters of
// [A-Za-z0-9@=_-] after the "@" (flake-pilot's rule), so it is safe in file
// names, container names and tap device names.
func ValidateInstance(a string) error {
	if !strings.HasPrefix(a, "@") || len(a) < 2 || len(a) > MaxInstanceName {
		return fmt.Errorf("invalid instance name %q: want @NAME, 1-%d characters", a, MaxInstanceName-1)
	}
	for _, r := range a[1:] {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '@', r == '=', r == '_', r == '-':
		default:
			return fmt.Errorf("invalid instance name %q: only letters, digits, @ = _ - are allowed", a)
		}
	}
	return nil
}
