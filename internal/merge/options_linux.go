package merge

import (
	"log/slog"

	"github.com/stratalinux/strata/internal/imageclass"
)

// NewEngine reads the class's configuration file below root, resolves it
// with the flags and the environment (ResolveOptions) and returns an engine
// for root. root is already validated ("/" for the host). Warnings about
// ignored values go to log, as systemd prints them.
func NewEngine(c imageclass.Class, root string, f Flags, lookupEnv func(string) (string, bool), log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A bad hierarchy list is refused before the configuration file is
	// read, as systemd does.
	if v, ok := lookupEnv(c.HierarchiesEnv()); ok {
		if _, err := ParseHierarchies(c.HierarchiesEnv(), v); err != nil {
			return nil, err
		}
	}
	cfg, warnings, err := LoadConfig(root, c)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	o, warnings, err := ResolveOptions(c, f, lookupEnv, cfg)
	for _, w := range warnings {
		log.Warn(w)
	}
	if err != nil {
		return nil, err
	}
	return &Engine{
		Class: c, Root: root, Log: log,
		Hierarchies: o.Hierarchies, Mode: o.Mode, Force: o.Force, Noexec: o.Noexec,
		OverlayOptions: o.OverlayOptions, OSRelease: o.OSRelease,
		AlwaysRefresh: o.AlwaysRefresh, Policy: o.Policy,
	}, nil
}
