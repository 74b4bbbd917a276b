// Package client is the typed admin client of the fleet server: one
// method per API operation, with the request and answer types of
// fleet/web, so no caller spells a URL path or builds a JSON body.
// Errors answered by the server are *web.APIError values carrying the
// HTTP status; errors.Is(err, ErrConflict) tells "exists already".
package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/web"
)

// ErrConflict and ErrNotFound match answers of HTTP 409 and 404.
var (
	ErrConflict = web.ErrConflict
	ErrNotFound = web.ErrNotFound
)

// APIError is an error answer of the server, with its HTTP status.
type APIError = web.APIError

// Client calls one fleet server's admin API.
type Client struct {
	api web.Client
}

// New returns a client of the server at base (e.g. http://host:8080)
// authenticating with the admin token; hc nil means http.DefaultClient.
func New(base, token string, hc *http.Client) *Client {
	return &Client{api: web.Client{URL: base, Token: token, HTTP: hc}}
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.api.Do(ctx, method, path, in, out)
}

func appPath(app string) string { return "/api/apps/" + url.PathEscape(app) }

// Apps lists the applications.
func (c *Client) Apps(ctx context.Context) ([]fleet.App, error) {
	var out []fleet.App
	return out, c.do(ctx, "GET", "/api/apps", nil, &out)
}

// CreateApp creates an application; an empty ID is generated.
func (c *Client) CreateApp(ctx context.Context, a fleet.App) (fleet.App, error) {
	var out fleet.App
	return out, c.do(ctx, "POST", "/api/apps", a, &out)
}

// Packages lists app's packages (app: id, product id or name).
func (c *Client) Packages(ctx context.Context, app string) ([]fleet.Package, error) {
	var out []fleet.Package
	return out, c.do(ctx, "GET", appPath(app)+"/packages", nil, &out)
}

// AddPackage registers a package of app; an existing version and arch
// answers ErrConflict.
func (c *Client) AddPackage(ctx context.Context, app string, p fleet.Package) (fleet.Package, error) {
	var out fleet.Package
	return out, c.do(ctx, "POST", appPath(app)+"/packages", p, &out)
}

// PackageID finds the package of app with version ver for arch (or for
// any arch).
func (c *Client) PackageID(ctx context.Context, app, ver, arch string) (string, error) {
	ps, err := c.Packages(ctx, app)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if p.Version == ver && (p.Arch == arch || p.Arch == "") {
			return p.ID, nil
		}
	}
	return "", fmt.Errorf("no package %s@%s for arch %s", app, ver, arch)
}

// Channels lists app's channels.
func (c *Client) Channels(ctx context.Context, app string) ([]fleet.Channel, error) {
	var out []fleet.Channel
	return out, c.do(ctx, "GET", appPath(app)+"/channels", nil, &out)
}

// CreateChannel creates a channel of app.
func (c *Client) CreateChannel(ctx context.Context, app string, r web.ChannelRequest) (fleet.Channel, error) {
	var out fleet.Channel
	return out, c.do(ctx, "POST", appPath(app)+"/channels", r, &out)
}

// UpdateChannel changes a channel (name or id) of app.
func (c *Client) UpdateChannel(ctx context.Context, app, channel string, r web.ChannelRequest) (fleet.Channel, error) {
	var out fleet.Channel
	return out, c.do(ctx, "PUT", appPath(app)+"/channels/"+url.PathEscape(channel), r, &out)
}

// Promote points a channel at version, which starts the rollout in its
// groups.
func (c *Client) Promote(ctx context.Context, app, channel, version string) (fleet.Channel, error) {
	return c.UpdateChannel(ctx, app, channel, web.ChannelRequest{Version: version})
}

// Groups lists app's groups.
func (c *Client) Groups(ctx context.Context, app string) ([]fleet.Group, error) {
	var out []fleet.Group
	return out, c.do(ctx, "GET", appPath(app)+"/groups", nil, &out)
}

// CreateGroup creates a group of app.
func (c *Client) CreateGroup(ctx context.Context, app string, r web.GroupRequest) (fleet.Group, error) {
	var out fleet.Group
	return out, c.do(ctx, "POST", appPath(app)+"/groups", r, &out)
}

// Group returns a group (name or id) with its rollout counters and
// breakdowns.
func (c *Client) Group(ctx context.Context, app, group string) (web.GroupView, error) {
	var out web.GroupView
	return out, c.do(ctx, "GET", appPath(app)+"/groups/"+url.PathEscape(group), nil, &out)
}

// UpdateGroup changes a group of app.
func (c *Client) UpdateGroup(ctx context.Context, app, group string, r web.GroupRequest) (fleet.Group, error) {
	var out fleet.Group
	return out, c.do(ctx, "PUT", appPath(app)+"/groups/"+url.PathEscape(group), r, &out)
}

// SetPolicy replaces a group's rollout policy.
func (c *Client) SetPolicy(ctx context.Context, app, group string, p fleet.Policy) (fleet.Group, error) {
	return c.UpdateGroup(ctx, app, group, web.GroupRequest{Policy: &p})
}

// Pause stops a group's rollout.
func (c *Client) Pause(ctx context.Context, app, group string) (fleet.Group, error) {
	return c.pause(ctx, app, group, "pause")
}

// Resume restarts a group's rollout.
func (c *Client) Resume(ctx context.Context, app, group string) (fleet.Group, error) {
	return c.pause(ctx, app, group, "resume")
}

func (c *Client) pause(ctx context.Context, app, group, verb string) (fleet.Group, error) {
	var out fleet.Group
	return out, c.do(ctx, "POST", appPath(app)+"/groups/"+url.PathEscape(group)+"/"+verb, nil, &out)
}

// InstanceQuery filters and pages a group's instances; zero values
// mean the server's defaults (page 1, 50 per page, no filter).
type InstanceQuery struct {
	Status  string // complete, error, onhold, …
	Version string
	Search  string // machine id or alias prefix
	Page    int
	Limit   int
}

// Instances lists one page of a group's instances.
func (c *Client) Instances(ctx context.Context, app, group string, q InstanceQuery) (web.InstancePage, error) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Page != 0 {
		set("page", strconv.Itoa(q.Page))
	}
	if q.Limit != 0 {
		set("limit", strconv.Itoa(q.Limit))
	}
	set("status", q.Status)
	set("version", q.Version)
	set("q", q.Search)
	path := appPath(app) + "/groups/" + url.PathEscape(group) + "/instances"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out web.InstancePage
	return out, c.do(ctx, "GET", path, nil, &out)
}

// Instance returns one instance of app with its recent events.
func (c *Client) Instance(ctx context.Context, app, machine string) (web.InstanceDetail, error) {
	var out web.InstanceDetail
	return out, c.do(ctx, "GET", appPath(app)+"/instances/"+url.PathEscape(machine), nil, &out)
}

// Pin holds one instance on version; an empty version unpins it.
func (c *Client) Pin(ctx context.Context, app, machine, version string) (web.Pin, error) {
	var out web.Pin
	return out, c.do(ctx, "PUT", appPath(app)+"/instances/"+url.PathEscape(machine)+"/pin", web.PinRequest{Version: version}, &out)
}

// ActivityQuery filters the activity log; App and Group are an id,
// product id or name; Before pages back from an activity id.
type ActivityQuery struct {
	App, Group string
	Before     int64
}

// Activity lists the newest activity entries matching q.
func (c *Client) Activity(ctx context.Context, q ActivityQuery) ([]fleet.Activity, error) {
	v := url.Values{}
	if q.App != "" {
		v.Set("app", q.App)
	}
	if q.Group != "" {
		v.Set("group", q.Group)
	}
	if q.Before != 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	path := "/api/activity"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out []fleet.Activity
	return out, c.do(ctx, "GET", path, nil, &out)
}

func lockPath(group string) string { return "/api/reboot-locks/" + url.PathEscape(group) }

// RebootLocks lists the FleetLock reboot semaphores by group.
func (c *Client) RebootLocks(ctx context.Context) ([]fleet.RebootLock, error) {
	var out []fleet.RebootLock
	return out, c.do(ctx, "GET", "/api/reboot-locks", nil, &out)
}

// RebootLock reads one group's semaphore (the default when none is stored).
func (c *Client) RebootLock(ctx context.Context, group string) (fleet.RebootLock, error) {
	var out fleet.RebootLock
	return out, c.do(ctx, "GET", lockPath(group), nil, &out)
}

// SetRebootLockMax sets how many nodes of group may reboot at once.
func (c *Client) SetRebootLockMax(ctx context.Context, group string, n int) (fleet.RebootLock, error) {
	var out fleet.RebootLock
	return out, c.do(ctx, "PUT", lockPath(group), web.RebootLockRequest{MaxHolders: &n}, &out)
}

// ReleaseRebootLock frees the slot id holds in group (for a node that
// died holding it, as locksmithctl unlock).
func (c *Client) ReleaseRebootLock(ctx context.Context, group, id string) (fleet.RebootLock, error) {
	var out fleet.RebootLock
	return out, c.do(ctx, "DELETE", lockPath(group)+"/holders/"+url.PathEscape(id), nil, &out)
}
