package fleet

import (
	"errors"
	"sort"
	"strings"

	"github.com/stratalinux/strata/internal/version"
)

// Config is an immutable, indexed snapshot of the admin data (apps,
// groups, channels, packages) that every check reads. The server reloads
// it when the store's configuration generation changes, so replicas agree
// within one refresh interval.
type Config struct {
	Generation int64
	apps       map[string]*App
	groups     map[string]*Group
	groupKey   map[groupKey]*Group
	channels   map[string]*Channel
	packages   map[string]*Package
	byVersion  map[versionKey]*Package
	floors     map[string][]*Package
}

type groupKey struct{ app, track, arch string }
type versionKey struct{ app, arch, version string }

// Lookup errors.
var (
	ErrUnknownApp   = errors.New("unknown application")
	ErrUnknownGroup = errors.New("no group for this track and architecture")
)

// NewConfig indexes the admin data.
func NewConfig(gen int64, apps []*App, groups []*Group, channels []*Channel, packages []*Package) *Config {
	c := &Config{
		Generation: gen,
		apps:       map[string]*App{}, groups: map[string]*Group{}, groupKey: map[groupKey]*Group{},
		channels: map[string]*Channel{}, packages: map[string]*Package{}, byVersion: map[versionKey]*Package{},
		floors: map[string][]*Package{},
	}
	for _, a := range apps {
		c.apps[strings.ToLower(a.ID)] = a
		if a.ProductID != "" {
			c.apps[strings.ToLower(a.ProductID)] = a
		}
	}
	for _, p := range packages {
		c.packages[p.ID] = p
		c.byVersion[versionKey{p.AppID, p.Arch, p.Version}] = p
	}
	for _, ch := range channels {
		c.channels[ch.ID] = ch
		var fl []*Package
		for _, id := range ch.Floors {
			if p := c.packages[id]; p != nil {
				fl = append(fl, p)
			}
		}
		sort.Slice(fl, func(i, j int) bool { return version.Compare(fl[i].Version, fl[j].Version) < 0 })
		c.floors[ch.ID] = fl
	}
	for _, g := range groups {
		if g.Policy.Window != nil {
			w := *g.Policy.Window
			_ = w.Prepare()
			g.Policy.Window = &w
		}
		c.groups[g.ID] = g
		k := groupKey{g.AppID, strings.ToLower(g.Track), g.Arch}
		if old := c.groupKey[k]; old == nil || old.Created.Before(g.Created) {
			c.groupKey[k] = g
		}
		// A group may also be addressed by its id as the track (legacy
		// Nebraska group UUIDs).
		c.groupKey[groupKey{g.AppID, strings.ToLower(g.ID), g.Arch}] = g
	}
	return c
}

// App resolves an app id (braced, unbraced, any case) or product id.
func (c *Config) App(id string) (*App, bool) {
	a, ok := c.apps[id]
	return a, ok
}

// Group resolves a group by app, track and architecture; a group with an
// empty architecture serves every architecture.
func (c *Config) Group(appID, track, arch string) (*Group, error) {
	t := strings.ToLower(track)
	if g := c.groupKey[groupKey{appID, t, arch}]; g != nil {
		return g, nil
	}
	if g := c.groupKey[groupKey{appID, t, ""}]; g != nil {
		return g, nil
	}
	return nil, ErrUnknownGroup
}

// GroupByID returns a group.
func (c *Config) GroupByID(id string) *Group { return c.groups[id] }

// Channel returns a channel.
func (c *Config) Channel(id string) *Channel { return c.channels[id] }

// Package returns a package.
func (c *Config) Package(id string) *Package { return c.packages[id] }

// Floors returns the channel's floors, ascending.
func (c *Config) Floors(channelID string) []*Package { return c.floors[channelID] }

// Target resolves the channel a group follows and the channel's package.
func (c *Config) Target(g *Group) (*Channel, *Package) {
	ch := c.channels[g.ChannelID]
	if ch == nil {
		return nil, nil
	}
	return ch, c.packages[ch.PackageID]
}

// Pin resolves the package an instance is pinned to: the version for the
// node's architecture, else for the channel's, else one for any
// architecture; nil when the app has no such package. A channel without
// an architecture (the default) does not make pins fail.
func (c *Config) Pin(appID, version, arch string, ch *Channel) *Package {
	archs := []string{arch}
	if ch != nil && ch.Arch != "" {
		archs = append(archs, ch.Arch)
	}
	for _, a := range append(archs, "") {
		if p := c.byVersion[versionKey{appID, a, version}]; p != nil {
			return p
		}
	}
	return nil
}
