package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/flake/launch"
	"github.com/stratalinux/strata/internal/flake/register"
)

type flakeFlags struct {
	user bool
	root string
	json bool
}

func (f *flakeFlags) where() register.Where { return register.Where{Root: f.root, User: f.user} }

func (f *flakeFlags) registry() flake.Registry { return f.where().Registry(os.Getenv) }

// newFlakeCommand is "strata flake": register, list, show, remove and
// pull flake-pilot compatible flakes.
func newFlakeCommand(env *Env) *cobra.Command {
	f := &flakeFlags{}
	cmd := &cobra.Command{
		Use:   "flake",
		Short: "Run container-, VM- or extension-isolated applications as host commands (flake-pilot compatible)",
	}
	pf := cmd.PersistentFlags()
	pf.BoolVar(&f.user, "user", false, "use the caller's registry (~/.config/flakes), also for root")
	pf.StringVar(&f.root, "root", "", "operate on the system registry below this directory (default: $STRATA_FLAKE_ROOT, else /)")
	cmd.AddCommand(newFlakeRegisterCommand(env, f), newFlakeListCommand(env, f), newFlakeShowCommand(env, f),
		newFlakeRemoveCommand(env, f), newFlakePullCommand(env, f))
	return cmd
}

type registerFlags struct {
	app, target, container, base, runAs, fromSysext  string
	layers, includeTar, includePath, opts            []string
	resume, attach, forceVsock, noNet, allowSysfiles bool
	checkHostDeps                                    bool
	kernel, rootfs, initrd, overlaySize, vm          string
	vcpus, memMiB                                    int
}

func newFlakeRegisterCommand(env *Env, f *flakeFlags) *cobra.Command {
	r := &registerFlags{}
	cmd := &cobra.Command{
		Use:   "register podman|vm|firecracker --app PATH … | register --from-sysext IMAGE --app PATH",
		Short: "Register a host command that runs inside a container, a VM or a privately merged extension",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if r.fromSysext == "" {
				return errors.New("register: name the engine (strata flake register podman|vm|firecracker …) or give --from-sysext IMAGE")
			}
			cfg, err := register.Sysext(r.appRequest(), r.fromSysext)
			if err != nil {
				return err
			}
			return registerFlake(env, f, r, cfg)
		},
	}
	cmd.Flags().StringVar(&r.fromSysext, "from-sysext", "", "run the app from this extension image, merged privately for the process")
	addAppFlags(cmd, r)
	podman := &cobra.Command{
		Use:   "podman --app PATH --container IMAGE [--base IMAGE] [--layer IMAGE]…",
		Short: "Register a podman flake",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := register.PodmanConfig(cmd.Context(), register.Podman{App: r.appRequest(), RunAsGiven: cmd.Flags().Changed("run-as"),
				Container: r.container, Base: r.base, Layers: r.layers, Attach: r.attach, Opts: r.opts,
				CheckHostDeps: r.checkHostDeps, AllowSystemfiles: r.allowSysfiles}, register.PodmanImages{})
			if err != nil {
				return err
			}
			return registerFlake(env, f, r, cfg)
		},
	}
	addAppFlags(podman, r)
	pf := podman.Flags()
	pf.StringVar(&r.container, "container", "", "container image (as named in podman's storage)")
	pf.StringVar(&r.base, "base", "", "base image: --container is a delta over it")
	pf.StringArrayVar(&r.layers, "layer", nil, "image copied over the base before the delta (repeatable, in order)")
	pf.BoolVar(&r.attach, "attach", false, "one container per instance; later launches re-attach")
	pf.StringArrayVar(&r.opts, "opt", nil, `podman option for the container, e.g. --opt "--net host" (repeatable)`)
	pf.BoolVar(&r.checkHostDeps, "check-host-dependencies", false, "record check_host_dependencies (flake-pilot: provision a plain container too, i.e. its /systemfiles and /removed host files)")
	pf.BoolVar(&r.allowSysfiles, "allow-systemfiles", false, "run a delta image's /systemfiles script on the host as the podman user at each new instance (never run otherwise)")
	podman.Flags().Lookup("run-as").Usage = "user podman runs as: NAME or #UID (rootless; root switches to it at launch), root (rootful), or \"caller\" for whoever launches (default: you)"

	vmCmd := func(engine string) *cobra.Command {
		c := &cobra.Command{
			Use:   engine + " --app PATH --kernel FILE --rootfs FILE [--initrd FILE]",
			Short: "Register a " + engine + " flake",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return registerVM(env, f, r, engine)
			},
		}
		addAppFlags(c, r)
		vf := c.Flags()
		vf.StringVar(&r.vm, "vm", "", "VM image name (pulled with strata flake pull vm --name); default: the app's name")
		vf.StringVar(&r.kernel, "kernel", "", "kernel image")
		vf.StringVar(&r.rootfs, "rootfs", "", "root file system image (read-only in the guest)")
		vf.StringVar(&r.initrd, "initrd", "", "initrd image")
		vf.StringVar(&r.overlaySize, "overlay-size", "", "writable overlay disk size, e.g. 20GiB or 20g")
		vf.IntVar(&r.vcpus, "vcpus", 0, "virtual CPUs (default 2)")
		vf.IntVar(&r.memMiB, "memory", 0, "memory in MiB (default 4096 for firecracker, 512 for qemu)")
		vf.BoolVar(&r.noNet, "no-net", false, "no network in the guest")
		vf.BoolVar(&r.forceVsock, "force-vsock", false, "talk to the guest over vsock also for one-shot launches (firecracker)")
		return c
	}
	cmd.AddCommand(podman, vmCmd("vm"), vmCmd("firecracker"))
	return cmd
}

func addAppFlags(cmd *cobra.Command, r *registerFlags) {
	fl := cmd.Flags()
	fl.StringVar(&r.app, "app", "", "host path of the command (its base name is the flake's name)")
	fl.StringVar(&r.target, "target", "", "program inside the engine (default: the same path as --app)")
	fl.StringArrayVar(&r.includeTar, "include-tar", nil, "host tar archive unpacked into every instance (repeatable)")
	fl.StringArrayVar(&r.includePath, "include-path", nil, "host path copied into every instance (repeatable)")
	fl.BoolVar(&r.resume, "resume", false, "keep one instance running and exec each launch in it")
	fl.StringVar(&r.runAs, "run-as", "", "user recorded as runtime.runas (default: the caller)")
}

func (r *registerFlags) appRequest() register.App {
	return register.App{Path: r.app, Target: r.target, IncludeTar: r.includeTar, IncludePath: r.includePath, Resume: r.resume, RunAs: r.runAs}
}

// registerFlake writes cfg into the registry, linking the app to this
// binary.
func registerFlake(env *Env, f *flakeFlags, r *registerFlags, cfg *flake.Config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return err
	}
	if err := register.Into(f.registry(), r.appRequest(), self, cfg); err != nil {
		return err
	}
	env.Log.Info(fmt.Sprintf("registered %s (%s engine)", r.app, cfg.Engine()))
	return nil
}

func registerVM(env *Env, f *flakeFlags, r *registerFlags, engine string) error {
	cfg, err := register.VMConfig(register.VM{App: r.appRequest(), Engine: engine, Name: r.vm, ImagesDir: vmImagesDir(f),
		Kernel: r.kernel, Rootfs: r.rootfs, Initrd: r.initrd, OverlaySize: r.overlaySize, VCPUs: r.vcpus, MemMiB: r.memMiB,
		NoNet: r.noNet, ForceVsock: r.forceVsock, Caller: register.CallerName(os.Geteuid(), os.Getenv)})
	if err != nil {
		return err
	}
	return registerFlake(env, f, r, cfg)
}

func vmImagesDir(f *flakeFlags) string {
	h, _ := os.UserHomeDir()
	return f.where().VMImagesDir(os.Getenv, h)
}

func newFlakeListCommand(env *Env, f *flakeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered flakes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ents, err := f.registry().List()
			if err != nil {
				return err
			}
			if f.json {
				if ents == nil {
					ents = []flake.Entry{}
				}
				return writeJSON(env.Stdout, "pretty", ents)
			}
			t := newTable("NAME", "ENGINE", "TARGET", "HOST APP PATH", "IMAGE")
			for _, e := range ents {
				if e.Error != "" {
					t.row(e.Name, "error", "-", "-", e.Error)
					continue
				}
				t.row(e.Name, e.Engine, e.Target, e.HostApp, e.Image)
			}
			return t.write(env.Stdout, true)
		},
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "output as JSON")
	return cmd
}

func newFlakeShowCommand(env *Env, f *flakeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a flake's merged configuration (NAME.yaml with its NAME.d drop-ins)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := f.registry().Dir()
			if err != nil {
				return err
			}
			cfg, files, err := flake.Load(dir, args[0])
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(env.Stdout, "pretty", map[string]any{"name": args[0], "engine": cfg.Engine(), "files": files, "config": cfg})
			}
			out, err := flake.Marshal(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "# %s (%s engine), from %s\n", args[0], cfg.Engine(), strings.Join(files, ", "))
			_, err = env.Stdout.Write(out)
			return err
		},
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "output as JSON")
	return cmd
}

func newFlakeRemoveCommand(env *Env, f *flakeFlags) *cobra.Command {
	var app string
	var force bool
	cmd := &cobra.Command{
		Use:   "remove NAME [--app PATH]",
		Short: "Remove a flake: its app link, NAME.yaml and NAME.d",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.registry().Remove(args[0], app, force); err != nil {
				return err
			}
			env.Log.Info("removed flake " + args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app path (default: host_app_path from the registration)")
	cmd.Flags().BoolVar(&force, "force", false, "remove even a broken registration or a foreign file at the app path")
	return cmd
}

func newFlakePullCommand(env *Env, f *flakeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "pull", Short: "Fetch container images or VM components for flakes"}
	podman := &cobra.Command{
		Use:   "podman URI|FILE",
		Short: "Pull a container image (registry reference) or load one from an archive file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return register.PullPodman(cmd.Context(), args[0], env.Stderr)
		},
	}
	var name, kernel, rootfs, initrd string
	vmc := &cobra.Command{
		Use:   "vm --name NAME --kernel URL|FILE --rootfs URL|FILE [--initrd URL|FILE]",
		Short: "Fetch a VM's kernel, rootfs and initrd into the VM image store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := register.PullVM(cmd.Context(), vmImagesDir(f), name, kernel, rootfs, initrd,
				func(ctx context.Context, url, dst string) error {
					c := &download.Client{UserAgent: "strata-flake/" + Version, Progress: func(u string) func(done, total int64) {
						return newProgressBar(env.Stderr, path.Base(u))
					}}
					_, err := c.File(ctx, url, dst, "", 64<<30)
					return err
				})
			if err != nil {
				return err
			}
			env.Log.Info("VM components in " + dir)
			return nil
		},
	}
	vf := vmc.Flags()
	vf.StringVar(&name, "name", "", "VM image name")
	vf.StringVar(&kernel, "kernel", "", "kernel (https:// URL or file)")
	vf.StringVar(&rootfs, "rootfs", "", "root file system image (URL or file)")
	vf.StringVar(&initrd, "initrd", "", "initrd (URL or file)")
	cmd.AddCommand(podman, vmc)
	return cmd
}

// isFlakeInvocation reports whether the binary runs under a registered
// flake's name (checked only for names that are not strata's own).
func isFlakeInvocation(name string) bool {
	if flake.IsReservedName(name) || strings.HasSuffix(name, ".test") {
		return false
	}
	return flake.Registered(os.Getenv("STRATA_FLAKE_ROOT"), name)
}

// newFlakeLauncherCommand runs the flake registered as name with every
// argument passed through untouched.
func newFlakeLauncherCommand(env *Env, name string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		DisableFlagParsing: true,
		SilenceErrors:      true,
		SilenceUsage:       true,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			l := launch.Launcher{Root: os.Getenv("STRATA_FLAKE_ROOT"), Getenv: os.Getenv, Stdin: fileOr(env.Stdin, os.Stdin),
				Stdout: fileOr(env.Stdout, os.Stdout), Stderr: fileOr(env.Stderr, os.Stderr), Log: env.Log,
				NoExec: os.Getenv("STRATA_FLAKE_NOEXEC") == "1"}
			code, err := l.Run(ctx, name, args)
			if err != nil {
				return &ExitError{Code: 125, Err: err}
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}

func fileOr(v any, def *os.File) *os.File {
	if f, ok := v.(*os.File); ok {
		return f
	}
	return def
}
