package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stratalinux/strata/internal/fleet"
	fleetclient "github.com/stratalinux/strata/internal/fleet/client"
	fleetsim "github.com/stratalinux/strata/internal/fleet/sim"
	"github.com/stratalinux/strata/internal/fleet/store"
	fleetweb "github.com/stratalinux/strata/internal/fleet/web"
)

// fleetOpts are the connection flags shared by the admin subcommands.
type fleetOpts struct {
	server, token string
	jsonOut       bool
}

func (o *fleetOpts) client() (*fleetclient.Client, error) {
	if o.server == "" {
		o.server = os.Getenv("STRATA_FLEET_SERVER")
	}
	if o.token == "" {
		o.token = os.Getenv("STRATA_FLEET_TOKEN")
	}
	if o.server == "" {
		return nil, errors.New("no fleet server: pass --server URL or set STRATA_FLEET_SERVER")
	}
	if o.token == "" {
		return nil, errors.New("no admin token: pass --token or set STRATA_FLEET_TOKEN (make one with: strata fleet token create --data DIR)")
	}
	return fleetclient.New(o.server, o.token, &http.Client{Timeout: 2 * time.Minute}), nil
}

func newFleetCommand(env *Env) *cobra.Command {
	o := &fleetOpts{}
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Administer the fleet update server and simulate nodes",
		Long: `Administer the Omaha fleet update server: applications, channels, packages,
groups with rollout policies, tokens; import a published repository; pause
and resume rollouts; simulate update_engine nodes.

Admin commands talk to the server's REST API (--server, --token or the
STRATA_FLEET_SERVER and STRATA_FLEET_TOKEN variables); "token create" opens
the database directly.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.server, "server", "", "fleet server base URL (default $STRATA_FLEET_SERVER)")
	pf.StringVar(&o.token, "token", "", "admin bearer token (default $STRATA_FLEET_TOKEN)")
	pf.BoolVar(&o.jsonOut, "json", false, "print JSON")
	cmd.AddCommand(newFleetTokenCommand(env, o), newFleetAppCommand(env, o), newFleetPackageCommand(env, o),
		newFleetChannelCommand(env, o), newFleetGroupCommand(env, o), newFleetPromoteCommand(env, o),
		newFleetPauseCommand(env, o, true), newFleetPauseCommand(env, o, false), newFleetPinCommand(env, o),
		newFleetInstancesCommand(env, o), newFleetImportCommand(env, o), newFleetSimulateCommand(env, o))
	return cmd
}

// fleetPrint prints v as JSON or as a table.
// fleetListCommand is a "list" subcommand: list from the server, print a
// table (row per item) or the JSON.
func fleetListCommand[T any](env *Env, o *fleetOpts, list func(context.Context, *fleetclient.Client) ([]T, error), header []string, row func(T) []string) *cobra.Command {
	return &cobra.Command{
		Use:  "list",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			items, err := list(cmdContext(cmd), c)
			if err != nil {
				return err
			}
			t := newTable(header...)
			for _, it := range items {
				t.row(row(it)...)
			}
			return fleetPrint(env, o, items, t)
		},
	}
}

func fleetPrint(env *Env, o *fleetOpts, v any, t *table) error {
	if o.jsonOut || t == nil {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return t.write(env.Stdout, true)
}

func newFleetTokenCommand(env *Env, o *fleetOpts) *cobra.Command {
	tc := &cobra.Command{Use: "token", Short: "Manage admin API tokens"}
	var data, database, name string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an admin token (printed once; only its hash is stored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dsn, err := store.Location(data, database)
			if err != nil {
				return err
			}
			st, err := store.Open(cmdContext(cmd), dsn)
			if err != nil {
				return err
			}
			defer st.Close()
			tok, hash := fleetweb.NewToken()
			if _, err := st.CreateToken(cmdContext(cmd), name, hash); err != nil {
				return err
			}
			if o.jsonOut {
				return fleetPrint(env, o, map[string]string{"name": name, "token": tok}, nil)
			}
			fmt.Fprintln(env.Stdout, tok)
			return nil
		},
	}
	create.Flags().StringVar(&data, "data", "", "server data directory (SQLite database DIR/fleet.db)")
	create.Flags().StringVar(&database, "database", "", "PostgreSQL URL instead of --data")
	create.Flags().StringVar(&name, "name", "admin", "a name for the token")
	tc.AddCommand(create)
	return tc
}

func newFleetAppCommand(env *Env, o *fleetOpts) *cobra.Command {
	ac := &cobra.Command{Use: "app", Short: "Manage applications (the OS and extension images)"}
	var id, product, kind, desc string
	create := &cobra.Command{
		Use:  "create NAME",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			a, err := c.CreateApp(cmdContext(cmd), fleet.App{ID: id, Name: args[0], ProductID: product, Kind: fleet.Kind(kind), Description: desc})
			if err != nil {
				return err
			}
			return fleetPrint(env, o, a, newTable("ID", "NAME", "KIND").withRow(a.ID, a.Name, string(a.Kind)))
		},
	}
	create.Flags().StringVar(&id, "id", "", "app id (a UUID, as in FLATCAR_RELEASE_APPID); generated if empty")
	create.Flags().StringVar(&product, "product-id", "", "alias nodes may send instead of the id")
	create.Flags().StringVar(&kind, "kind", "os", "os or extension")
	create.Flags().StringVar(&desc, "description", "", "free text")
	list := fleetListCommand(env, o, func(ctx context.Context, c *fleetclient.Client) ([]fleet.App, error) { return c.Apps(ctx) }, []string{"ID", "NAME", "KIND", "PRODUCT-ID"},
		func(a fleet.App) []string { return []string{a.ID, a.Name, string(a.Kind), a.ProductID} })
	ac.AddCommand(create, list)
	return ac
}

func (t *table) withRow(cells ...string) *table {
	t.row(cells...)
	return t
}

func newFleetPackageCommand(env *Env, o *fleetOpts) *cobra.Command {
	pc := &cobra.Command{Use: "package", Short: "Manage packages (versions of an app's payload)"}
	var app, ver, arch, url, file string
	var extras, blacklist []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Register a payload file served under --url",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			pl, err := fleet.ReadPayload(os.DirFS(filepath.Dir(file)), filepath.Base(file))
			if err != nil {
				return fmt.Errorf("--file %s: %w", file, err)
			}
			ctx := cmdContext(cmd)
			var ids []string
			for _, x := range extras {
				id, err := fleetPackageRef(ctx, c, x, arch)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			p, err := c.AddPackage(ctx, app, fleet.Package{Version: ver, Arch: arch, URL: url, Filename: filepath.Base(file), Size: pl.Size, SHA1: pl.SHA1, SHA256: pl.SHA256, Extras: ids, Blacklist: blacklist})
			if err != nil {
				return err
			}
			return fleetPrint(env, o, p, newTable("ID", "VERSION", "ARCH", "FILE", "SIZE").withRow(p.ID, p.Version, p.Arch, p.Filename, fmt.Sprint(p.Size)))
		},
	}
	f := create.Flags()
	f.StringVar(&app, "app", "", "application (id, product id or name)")
	f.StringVar(&ver, "version", "", "package version")
	f.StringVar(&arch, "arch", "amd64", "architecture (amd64, arm64)")
	f.StringVar(&url, "url", "", "codebase URL the file is served under")
	f.StringVar(&file, "file", "", "the payload, for its size and hashes")
	f.StringSliceVar(&extras, "extra", nil, "extension package delivered with this one: APP@VERSION or package id (repeatable)")
	f.StringSliceVar(&blacklist, "blacklist", nil, "channel (name or id) this package must never be served on (repeatable)")
	for _, n := range []string{"app", "version", "url", "file"} {
		_ = create.MarkFlagRequired(n)
	}
	list := fleetListCommand(env, o, func(ctx context.Context, c *fleetclient.Client) ([]fleet.Package, error) { return c.Packages(ctx, app) }, []string{"ID", "VERSION", "ARCH", "FILE", "SIZE", "EXTRAS"},
		func(p fleet.Package) []string {
			return []string{p.ID, p.Version, p.Arch, p.Filename, fmt.Sprint(p.Size), fmt.Sprint(len(p.Extras))}
		})
	list.Flags().StringVar(&app, "app", "", "application")
	_ = list.MarkFlagRequired("app")
	pc.AddCommand(create, list)
	return pc
}

// fleetPackageRef resolves APP@VERSION (or a package id) to a package id.
func fleetPackageRef(ctx context.Context, c *fleetclient.Client, ref, arch string) (string, error) {
	app, ver, ok := strings.Cut(ref, "@")
	if !ok {
		return ref, nil
	}
	id, err := c.PackageID(ctx, app, ver, arch)
	if err != nil {
		return "", fmt.Errorf("--extra %s: %w", ref, err)
	}
	return id, nil
}

func newFleetChannelCommand(env *Env, o *fleetOpts) *cobra.Command {
	cc := &cobra.Command{Use: "channel", Short: "Manage channels (which version a group should run)"}
	var app, arch, ver string
	var floors []string
	create := &cobra.Command{
		Use:  "create NAME",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ch, err := c.CreateChannel(cmdContext(cmd), app, fleetweb.ChannelRequest{Name: args[0], Arch: arch, Version: ver, Floors: floors})
			if err != nil {
				return err
			}
			return fleetPrint(env, o, ch, newTable("ID", "NAME", "ARCH").withRow(ch.ID, ch.Name, ch.Arch))
		},
	}
	create.Flags().StringVar(&app, "app", "", "application")
	create.Flags().StringVar(&arch, "arch", "", "architecture (empty: any)")
	create.Flags().StringVar(&ver, "version", "", "initial version")
	create.Flags().StringSliceVar(&floors, "floor", nil, "package id every node must pass through (repeatable)")
	_ = create.MarkFlagRequired("app")
	list := fleetListCommand(env, o, func(ctx context.Context, c *fleetclient.Client) ([]fleet.Channel, error) { return c.Channels(ctx, app) }, []string{"ID", "NAME", "ARCH", "PACKAGE"},
		func(ch fleet.Channel) []string { return []string{ch.ID, ch.Name, ch.Arch, ch.PackageID} })
	list.Flags().StringVar(&app, "app", "", "application")
	_ = list.MarkFlagRequired("app")
	cc.AddCommand(create, list)
	return cc
}

func newFleetPromoteCommand(env *Env, o *fleetOpts) *cobra.Command {
	var app, channel string
	cmd := &cobra.Command{
		Use:   "promote VERSION",
		Short: "Point a channel at a version (starts the rollout in its groups)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ch, err := c.Promote(cmdContext(cmd), app, channel, args[0])
			if err != nil {
				return err
			}
			if o.jsonOut {
				return fleetPrint(env, o, ch, nil)
			}
			fmt.Fprintf(env.Stdout, "channel %s now serves %s\n", ch.Name, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "application")
	cmd.Flags().StringVar(&channel, "channel", "", "channel name or id")
	_ = cmd.MarkFlagRequired("app")
	_ = cmd.MarkFlagRequired("channel")
	return cmd
}

// policyFlags binds the rollout policy to flags.
type policyFlags struct {
	disabled, safe, paused bool
	perPeriod, concurrent  int
	period, timeout, poll  time.Duration
	percent                float64
	days                   []string
	start, end, tz         string
}

func (p *policyFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&p.disabled, "disabled", false, "updates disabled")
	f.BoolVar(&p.safe, "safe-mode", false, "one canary first; a failed canary pauses the group")
	f.BoolVar(&p.paused, "paused", false, "start paused")
	f.IntVar(&p.perPeriod, "max-per-period", 0, "max grants per --period (0: unlimited)")
	f.DurationVar(&p.period, "period", time.Hour, "period of --max-per-period")
	f.IntVar(&p.concurrent, "max-concurrent", 0, "max updates in progress at once (0: unlimited)")
	f.DurationVar(&p.timeout, "update-timeout", time.Hour, "free a slot whose node did not finish within this")
	f.Float64Var(&p.percent, "percent", 100, "percentage of nodes eligible (stable hash of machine id and version)")
	f.DurationVar(&p.poll, "poll-interval", 0, "poll interval sent to throttled nodes (0: their default)")
	f.StringSliceVar(&p.days, "window-days", nil, "update window days (mon,tue,…); empty: every day")
	f.StringVar(&p.start, "window-start", "", "update window start HH:MM")
	f.StringVar(&p.end, "window-end", "", "update window end HH:MM")
	f.StringVar(&p.tz, "timezone", "UTC", "time zone of the update window")
}

func (p *policyFlags) policy() (fleet.Policy, error) {
	pol := fleet.Policy{UpdatesEnabled: !p.disabled, SafeMode: p.safe, Paused: p.paused, MaxUpdatesPerPeriod: p.perPeriod,
		Period: fleet.Duration(p.period), MaxConcurrent: p.concurrent, UpdateTimeout: fleet.Duration(p.timeout),
		Percent: p.percent, PollInterval: fleet.Duration(p.poll)}
	if p.start != "" || p.end != "" || len(p.days) > 0 {
		pol.Window = &fleet.Window{Days: p.days, Start: p.start, End: p.end, Timezone: p.tz}
	}
	return pol, pol.Validate()
}

func newFleetGroupCommand(env *Env, o *fleetOpts) *cobra.Command {
	gc := &cobra.Command{Use: "group", Short: "Manage groups and their rollout policies"}
	var app, track, arch, channel string
	var pf policyFlags
	create := &cobra.Command{
		Use:  "create NAME",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			pol, err := pf.policy()
			if err != nil {
				return err
			}
			g, err := c.CreateGroup(cmdContext(cmd), app, fleetweb.GroupRequest{Name: args[0], Track: track, Arch: arch, Channel: channel, Policy: &pol})
			if err != nil {
				return err
			}
			return fleetPrint(env, o, g, newTable("ID", "NAME", "TRACK", "ARCH").withRow(g.ID, g.Name, g.Track, g.Arch))
		},
	}
	create.Flags().StringVar(&app, "app", "", "application")
	create.Flags().StringVar(&track, "track", "", "track nodes send (GROUP= in update.conf); default: the name")
	create.Flags().StringVar(&arch, "arch", "", "architecture (empty: any)")
	create.Flags().StringVar(&channel, "channel", "", "channel name")
	pf.bind(create)
	_ = create.MarkFlagRequired("app")

	var spf policyFlags
	set := &cobra.Command{
		Use:   "set-policy GROUP",
		Short: "Replace a group's rollout policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			pol, err := spf.policy()
			if err != nil {
				return err
			}
			g, err := c.SetPolicy(cmdContext(cmd), app, args[0], pol)
			if err != nil {
				return err
			}
			return fleetPrint(env, o, g, nil)
		},
	}
	set.Flags().StringVar(&app, "app", "", "application")
	spf.bind(set)
	_ = set.MarkFlagRequired("app")

	list := fleetListCommand(env, o, func(ctx context.Context, c *fleetclient.Client) ([]fleet.Group, error) { return c.Groups(ctx, app) }, []string{"ID", "NAME", "TRACK", "ARCH", "PAUSED"},
		func(g fleet.Group) []string {
			return []string{g.ID, g.Name, g.Track, g.Arch, fmt.Sprint(g.Policy.Paused)}
		})
	list.Flags().StringVar(&app, "app", "", "application")
	_ = list.MarkFlagRequired("app")

	show := &cobra.Command{
		Use:   "show GROUP",
		Short: "Show a group's rollout counters and version and status breakdown",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			v, err := c.Group(cmdContext(cmd), app, args[0])
			if err != nil {
				return err
			}
			if o.jsonOut {
				return fleetPrint(env, o, v, nil)
			}
			r := v.Rollout
			fmt.Fprintf(env.Stdout, "group %s, target %s: granted %d, in progress %d, succeeded %d, failed %d, timed out %d\n",
				v.Name, v.Target, r.Granted, r.InProgress, r.Succeeded, r.Failed, r.TimedOut)
			t := newTable("KIND", "VALUE", "INSTANCES")
			for _, c := range v.Versions {
				t.row("version", c.Key, fmt.Sprint(c.Count))
			}
			for _, c := range v.Statuses {
				t.row("status", c.Key, fmt.Sprint(c.Count))
			}
			return t.write(env.Stdout, true)
		},
	}
	show.Flags().StringVar(&app, "app", "", "application")
	_ = show.MarkFlagRequired("app")
	gc.AddCommand(create, set, list, show)
	return gc
}

func newFleetPauseCommand(env *Env, o *fleetOpts, pause bool) *cobra.Command {
	verb := "resume"
	if pause {
		verb = "pause"
	}
	var app string
	cmd := &cobra.Command{
		Use:   verb + " GROUP",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a group's rollout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			pauseOrResume := c.Resume
			if pause {
				pauseOrResume = c.Pause
			}
			g, err := pauseOrResume(cmdContext(cmd), app, args[0])
			if err != nil {
				return err
			}
			if o.jsonOut {
				return fleetPrint(env, o, g, nil)
			}
			fmt.Fprintf(env.Stdout, "group %s: rollout %sd\n", g.Name, verb)
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "application")
	_ = cmd.MarkFlagRequired("app")
	return cmd
}

func newFleetPinCommand(env *Env, o *fleetOpts) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "pin MACHINE-ID [VERSION]",
		Short: "Hold one instance on a version (no VERSION: unpin)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			v := ""
			if len(args) == 2 {
				v = args[1]
			}
			out, err := c.Pin(cmdContext(cmd), app, args[0], v)
			if err != nil {
				return err
			}
			return fleetPrint(env, o, out, newTable("MACHINE", "PINNED").withRow(args[0], v))
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "application")
	_ = cmd.MarkFlagRequired("app")
	return cmd
}

func newFleetInstancesCommand(env *Env, o *fleetOpts) *cobra.Command {
	var app, group, status, ver, q string
	var page, limit int
	cmd := &cobra.Command{
		Use:   "instances",
		Short: "List a group's instances (filter and page)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			res, err := c.Instances(cmdContext(cmd), app, group, fleetclient.InstanceQuery{Status: status, Version: ver, Search: q, Page: page, Limit: limit})
			if err != nil {
				return err
			}
			t := newTable("MACHINE", "VERSION", "STATUS", "LAST-CHECK", "ALIAS")
			for _, in := range res.Instances {
				t.row(in.MachineID, in.Version, in.Status.String(), in.LastCheck.Format(time.RFC3339), in.Alias)
			}
			return fleetPrint(env, o, res, t)
		},
	}
	f := cmd.Flags()
	f.StringVar(&app, "app", "", "application")
	f.StringVar(&group, "group", "", "group name or id")
	f.StringVar(&status, "status", "", "only this status (complete, error, onhold, …)")
	f.StringVar(&ver, "version", "", "only this version")
	f.StringVar(&q, "search", "", "machine id or alias prefix")
	f.IntVar(&page, "page", 1, "page number")
	f.IntVar(&limit, "limit", 50, "instances per page (≤ 500)")
	_ = cmd.MarkFlagRequired("app")
	_ = cmd.MarkFlagRequired("group")
	return cmd
}

func newFleetImportCommand(env *Env, o *fleetOpts) *cobra.Command {
	var repo, url, osName string
	cmd := &cobra.Command{
		Use:   "import --repo DIR --url URL",
		Short: "Register the images of a `strata publish` repository as packages",
		Long: `Read DIR/SHA256SUMS, verify each NAME-VERSION-ARCH.raw image against it and
register it as a package of the application NAME (created when missing, as
an extension image unless NAME is --os) served under --url. Each OS package
imported carries the newest extension packages of this import for its
architecture as extra packages, so one rollout delivers both. Packages
that already exist are left alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			return fleetImport(cmdContext(cmd), env, c, repo, url, osName)
		},
	}
	cmd.Flags().StringVar(&repo, "repo", "", "repository directory (with SHA256SUMS)")
	cmd.Flags().StringVar(&url, "url", "", "URL the repository is served under (codebase)")
	cmd.Flags().StringVar(&osName, "os", "", "image name that is the OS payload (others are extensions)")
	_ = cmd.MarkFlagRequired("repo")
	_ = cmd.MarkFlagRequired("url")
	return cmd
}

func fleetImport(ctx context.Context, env *Env, c *fleetclient.Client, repo, url, osName string) error {
	return c.Import(ctx, repo, url, osName, func(ev fleetclient.ImportEvent) {
		switch {
		case ev.CreatedApp != nil:
			fmt.Fprintf(env.Stderr, "created application %s (%s)\n", ev.CreatedApp.Name, ev.CreatedApp.Kind)
		case ev.Existing != nil:
			fmt.Fprintf(env.Stderr, "%s %s (%s): already imported\n", ev.Existing.Name, ev.Existing.Version, ev.Existing.Arch)
		case ev.Imported != nil:
			fmt.Fprintf(env.Stdout, "imported %s %s (%s)\n", ev.Imported.Name, ev.Imported.Version, ev.Imported.Arch)
		}
	})
}

func newFleetSimulateCommand(env *Env, o *fleetOpts) *cobra.Command {
	var cfg fleetsim.Config
	cmd := &cobra.Command{
		Use:   "simulate --server URL --instances N --concurrency C",
		Short: "Drive simulated update_engine nodes against a fleet server",
		Long: `Simulate N update_engine nodes against the fleet server at --server (and
nothing else): each checks in, downloads, installs, reboots into the new
version and reports, with --failure-rate of downloads failing. With
--interval 0 the nodes run flat out, which measures the server's capacity.
Stops after --duration or --checks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Server == "" {
				cfg.Server = o.server
			}
			if cfg.Server == "" {
				cfg.Server = os.Getenv("STRATA_FLEET_SERVER")
			}
			if f, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				cfg.Progress = func(s fleetsim.Stats) {
					fmt.Fprintf(env.Stderr, "\r\033[K%s elapsed: %d checks (%.0f/s), %d granted, %d updated, %d failed, %d errors",
						s.Elapsed.Round(time.Second), s.Checks, s.PerSecond, s.Granted, s.Updated, s.Failed, s.Errors)
				}
			}
			st, err := fleetsim.Run(cmdContext(cmd), cfg)
			if cfg.Progress != nil {
				fmt.Fprintln(env.Stderr)
			}
			if err != nil {
				return err
			}
			if o.jsonOut {
				return fleetPrint(env, o, st, nil)
			}
			fmt.Fprintln(env.Stdout, st.String())
			if st.Errors > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("simulate: %d requests failed", st.Errors)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "url", "", "fleet server URL (alias of --server)")
	f.IntVar(&cfg.Instances, "instances", 100, "number of simulated nodes")
	f.IntVar(&cfg.Concurrency, "concurrency", 8, "requests in flight")
	f.StringVar(&cfg.AppID, "app", "e96281a6-d1af-4bde-9a0a-97b76e56dc57", "app id the nodes send")
	f.StringVar(&cfg.Track, "track", "stable", "track (group) the nodes send")
	f.StringVar(&cfg.Version, "version", "1.0.0", "version the nodes start on")
	f.DurationVar(&cfg.Interval, "interval", 2*time.Second, "time between two checks of one node (0: flat out)")
	f.DurationVar(&cfg.Duration, "duration", time.Minute, "stop after this long")
	f.Int64Var(&cfg.Checks, "checks", 0, "stop after this many update checks (0: no limit)")
	f.Float64Var(&cfg.FailureRate, "failure-rate", 0.02, "probability that a granted download fails")
	f.StringVar(&cfg.MachinePrefix, "machine-prefix", "", "prefix of the simulated machine ids")
	f.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	f.BoolVar(&cfg.IdleOnly, "checks-only", false, "send update checks only, never follow a grant (measures the check path)")
	return cmd
}
