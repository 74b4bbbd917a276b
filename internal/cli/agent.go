package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/systemctl"
	"os"
	"path"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/node/agent"
	"github.com/stratalinux/strata/internal/rootfs"
)

// agentFlags are the flags every `strata agent` command shares.
type agentFlags struct {
	root, disk, booted, stateDir string
}

// newAgentCommand is `strata agent`: the node agent (update_engine's and
// locksmithd's roles), in the foreground, or one step of it for scripts.
func newAgentCommand(env *Env) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: take OS updates from the fleet server and reboot under its coordination",
		Long: `Check in with the fleet server over Omaha as update_engine does, download,
verify and install granted OS updates into the inactive /usr slot, report
progress, reboot under REBOOT_STRATEGY and the maintenance window, and after
the reboot run the health checks, mark the slot good and report completion.
Configured by /etc/strata/update.conf over /etc/flatcar/update.conf over
/usr/share/flatcar/update.conf; state in /var/lib/strata/agent/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, closeLock, err := f.agent(env)
			if err != nil {
				return err
			}
			defer closeLock()
			ctx := cmdContext(cmd)
			if err := a.Start(ctx); err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			// The daemon idles on one core and takes them all for a payload (see Agent.Parallel).
			procs := runtime.GOMAXPROCS(0)
			a.Parallel = func(on bool) {
				if on {
					runtime.GOMAXPROCS(procs)
				} else {
					runtime.GOMAXPROCS(1)
				}
			}
			a.Parallel(false)
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("agent: %w", err)
			}
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.root, "root", "", "operate on an alternate root directory (config, identity, state)")
	pf.StringVar(&f.disk, "disk", "", "install into this OS disk image file instead of the booted disk (never reboots the machine)")
	pf.StringVar(&f.booted, "booted", "", "with --disk: the slot taken as booted, A or B (default: the one the boot loader would pick)")
	pf.StringVar(&f.stateDir, "state-dir", "", "the agent's state directory (default ROOT/var/lib/strata/agent)")
	cmd.AddCommand(newAgentCheckCommand(env, &f), newAgentUpdateCommand(env, &f), newAgentStatusCommand(env, &f))
	return cmd
}

func (f *agentFlags) rootfs() (rootfs.Root, error) {
	r, err := rootfs.ParseRoot(f.root)
	if err != nil {
		return r, fmt.Errorf("--root: %w", err)
	}
	return r, nil
}

func (f *agentFlags) dir(r rootfs.Root) string {
	if f.stateDir != "" {
		return f.stateDir
	}
	return r.Join(agent.StateDir)
}

// agent builds the agent from the flags and the configuration files.
func (f *agentFlags) agent(env *Env) (*agent.Agent, func() error, error) {
	if f.booted != "" && f.disk == "" {
		return nil, nil, fmt.Errorf("--booted needs --disk FILE (on the running system the booted slot is read from /usr's device)")
	}
	r, err := f.rootfs()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := agent.LoadConfig(r)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	id, err := agent.LoadIdentity(r, cfg, runtime.GOARCH)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	lock, closeLock, err := agent.NewLock(cfg, r, id.MachineID, env.Log)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	a := &agent.Agent{Config: cfg, Root: r, Dir: f.dir(r), Disk: f.disk, Booted: f.booted, Arch: sdparse.NativeArchitecture(), Lock: lock, Log: env.Log,
		Reboot: f.reboot(env, cfg),
		Refresh: func(ctx context.Context) error {
			me, err := newMergeEngine(env, imageclass.Sysext, r.Path())
			if err != nil {
				return err
			}
			_, err = me.Refresh(ctx)
			return err
		}}
	return a, closeLock, nil
}

// reboot is how the agent reboots: not at all with --disk (a test disk
// image is "rebooted" by starting the agent again with --booted).
func (f *agentFlags) reboot(env *Env, cfg agent.Config) func(context.Context) error {
	if f.disk == "" {
		return agent.RebootFunc(cfg, systemctl.Manager{})
	}
	return func(context.Context) error {
		fmt.Fprintf(env.Stdout, "reboot needed: the update waits in %s (--disk: this machine is not rebooted)\n", f.disk)
		return nil
	}
}

// runOnce starts the agent and runs it until it has to wait.
func runOnce(cmd *cobra.Command, env *Env, f *agentFlags, interactive bool) error {
	a, closeLock, err := f.agent(env)
	if err != nil {
		return err
	}
	defer closeLock()
	a.Interactive = interactive
	if interactive {
		if w, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(w.Fd())) {
			var bar func(done, total int64)
			a.Progress = func(done, total int64) {
				if bar == nil {
					name := "update"
					if o := a.Journal().Offer; o != nil {
						name = path.Base(o.Payload.Name)
					}
					bar = newProgressBar(env.Stderr, name)
				}
				bar(done, total)
			}
		}
	}
	ctx := cmdContext(cmd)
	if err := a.Start(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if _, err := a.RunOnce(ctx, true); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	j := a.Journal()
	switch j.Phase {
	case agent.Idle:
		if j.LastError != "" {
			fmt.Fprintf(env.Stdout, "up to date (%s); %s\n", a.Identity().Version, j.LastError)
		} else {
			fmt.Fprintf(env.Stdout, "up to date (%s)\n", a.Identity().Version)
		}
	default:
		v := ""
		if j.Offer != nil {
			v = j.Offer.Version + " "
		}
		fmt.Fprintf(env.Stdout, "%s%s\n", v, j.Phase)
	}
	return nil
}

func newAgentCheckCommand(env *Env, f *agentFlags) *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "check --once",
		Short: "Check in with the fleet server once, and carry out what it grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !once {
				return fmt.Errorf("agent check: pass --once (the daemon is `strata agent`)")
			}
			return runOnce(cmd, env, f, false)
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "one check, then exit")
	return cmd
}

func newAgentUpdateCommand(env *Env, f *agentFlags) *cobra.Command {
	var now bool
	cmd := &cobra.Command{
		Use:   "update --now",
		Short: "Ask the fleet server for an update now (an interactive check) and install it, with progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !now {
				return fmt.Errorf("agent update: pass --now")
			}
			return runOnce(cmd, env, f, true)
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "check and update now")
	return cmd
}

// agentStatus is `strata agent status --json`.
type agentStatus struct {
	State   agent.Phase `json:"state"`
	Version string      `json:"update_version,omitempty"`
	From    string      `json:"from_version,omitempty"`
	Target  string      `json:"target_slot,omitempty"`
	Done    int64       `json:"downloaded,omitempty"`
	Total   int64       `json:"total,omitempty"`
	Lock    bool        `json:"lock_held"`
	Holders []string    `json:"lock_holders,omitempty"`
	Error   string      `json:"last_error,omitempty"`
	Last    time.Time   `json:"last_check,omitzero"`
	Next    time.Time   `json:"next_check,omitzero"`
	Pending int         `json:"pending_events"`
	Skip    []string    `json:"not_retried,omitempty"`
	Extras  []string    `json:"extensions_failed,omitempty"`
}

func newAgentStatusCommand(env *Env, f *agentFlags) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent's state, the update in progress and the last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.rootfs()
			if err != nil {
				return err
			}
			j, err := agent.LoadJournal(f.dir(r))
			if err != nil {
				return err
			}
			st := agentStatus{State: j.Phase, From: j.FromVersion, Target: j.TargetSlot, Done: j.Done, Total: j.Total, Lock: j.LockHeld, Holders: j.LockHolders,
				Error: j.LastError, Last: j.LastCheck, Next: j.NextCheck, Pending: len(j.Outbox), Skip: j.Skip, Extras: j.ExtrasFailed}
			if j.Offer != nil {
				st.Version = j.Offer.Version
			}
			if jsonOut {
				return writeJSON(env.Stdout, "pretty", st)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "state:\t%s\n", st.State)
			if st.Version != "" {
				fmt.Fprintf(tw, "update:\t%s (from %s)\n", st.Version, orDash(st.From))
			}
			if st.State == agent.Downloading && st.Total > 0 {
				fmt.Fprintf(tw, "progress:\t%d%% (%d/%d MiB)\n", st.Done*100/st.Total, st.Done>>20, st.Total>>20)
			}
			if st.Target != "" {
				fmt.Fprintf(tw, "slot:\t%s\n", st.Target)
			}
			fmt.Fprintf(tw, "reboot lock:\t%s\n", yesNo(st.Lock))
			if len(st.Holders) > 0 {
				fmt.Fprintf(tw, "lock held by:\t%s\n", strings.Join(st.Holders, ", "))
			}
			fmt.Fprintf(tw, "last check:\t%s\n", timeOrDash(st.Last))
			fmt.Fprintf(tw, "next check:\t%s\n", timeOrDash(st.Next))
			if st.Pending > 0 {
				fmt.Fprintf(tw, "unsent events:\t%d\n", st.Pending)
			}
			if len(st.Skip) > 0 {
				fmt.Fprintf(tw, "not retried:\t%s\n", strings.Join(st.Skip, " "))
			}
			if len(st.Extras) > 0 {
				fmt.Fprintf(tw, "extensions failed:\t%s\n", strings.Join(st.Extras, " "))
			}
			fmt.Fprintf(tw, "last error:\t%s\n", orDash(st.Error))
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the status as JSON")
	return cmd
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
