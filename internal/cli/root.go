// Package cli is Strata's command tree: flags, table and JSON output, exit
// codes. It holds no business logic; every command calls into a package
// that decides (pure) and a thin layer that acts.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// ExitError carries a specific process exit code (systemd's conventions
// where Strata is compatible) together with the error to print.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Env is what every command gets from the process: its streams and logger.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
	// Args0 is the name the binary was invoked as.
	Args0 string
}

// Main runs the command line and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Args0: args[0]}
	env.Log = newLogger(stderr)

	root := commandFor(env, filepath.Base(args[0]), args[1:])
	root.SetArgs(args[1:])
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true
	root.SilenceUsage = true

	err := root.Execute()
	if err == nil || errors.Is(err, errDone) {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(stderr, oneLine(ee.Err.Error()))
		}
		return ee.Code
	}
	fmt.Fprintln(stderr, oneLine(err.Error()))
	return 1
}

// commandFor picks the command tree by invocation name (multi-call).
func commandFor(env *Env, name string, args []string) *cobra.Command {
	switch name {
	case "systemd-sysext":
		return systemdVersion(newExtCommand(env, "systemd-sysext", classSysext))
	case "systemd-confext":
		return systemdVersion(newExtCommand(env, "systemd-confext", classConfext))
	case "systemd-sysupdate":
		return systemdVersion(newSysupdateCommand(env, "systemd-sysupdate"))
	case "flake-ctl":
		return newFlakeCtlCommand(env)
	}
	if name != "strata" && isFlakeInvocation(name) {
		return newFlakeLauncherCommand(env, name)
	}
	return newRootCommand(env, args)
}

// newRootCommand builds the tree; when args name a subcommand, only that
// one (building every command's flags is a tenth of start-up, paid by
// every node-side call).
func newRootCommand(env *Env, args []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Bake, publish, serve, update and merge system extension images",
		Long: `Strata is a toolchain for composable, image-based Linux: it bakes system
extension images, publishes and serves them, updates them on each node,
merges them over the read-only OS, and launches isolated applications as
host commands.`,
		Version: Version,
	}
	want := ""
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			want = a
			break
		}
	}
	only := -1
	for i, sc := range subcommands {
		if sc.name == want {
			only = i
		}
	}
	for i, sc := range subcommands {
		if only < 0 || i == only {
			root.AddCommand(sc.new(env))
		}
	}
	return root
}

// subcommands lists the constructors of the top-level commands.
var subcommands = []struct {
	name string
	new  func(*Env) *cobra.Command
}{
	{"sysext", func(env *Env) *cobra.Command { return newExtCommand(env, "sysext", classSysext) }},
	{"confext", func(env *Env) *cobra.Command { return newExtCommand(env, "confext", classConfext) }},
	{"test", newTestCommand},
	{"__merge-exec", newMergeExecCommand},
	{"bake", newBakeCommand},
	{"lint", newLintCommand},
	{"inspect", newInspectCommand},
	{"os", newOSCommand},
	{"flake", newFlakeCommand},
	{"sysupdate", func(env *Env) *cobra.Command { return newSysupdateCommand(env, "sysupdate") }},
	{"publish", newPublishCommand},
	{"key", newKeyCommand},
	{"serve", newServeCommand},
	{"ext", newExtPkgCommand},
	{"provision", newProvisionCommand},
	{"fleet", newFleetCommand},
	{"agent", newAgentCommand},
}

// CompatSystemd is the systemd release whose sysext, confext and sysupdate
// interfaces Strata implements; `systemd-sysext --version` names it first,
// as systemd does, for scripts that gate features on it.
const CompatSystemd = "260"

func systemdVersion(c *cobra.Command) *cobra.Command {
	c.Version = Version
	c.SetVersionTemplate("systemd " + CompatSystemd + " (strata " + Version + ")\n")
	return c
}

// Version is the program version, set at link time.
var Version = "0.1.0-dev"

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToLower(os.Getenv("SYSTEMD_LOG_LEVEL")) {
	case "debug", "7":
		level = slog.LevelDebug
	case "warning", "4", "err", "3", "error":
		level = slog.LevelWarn
	}
	if v := os.Getenv("STRATA_LOG_LEVEL"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	return slog.New(newLineHandler(w, level))
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.ReplaceAll(s, "\n", "; ")
}
