package cli

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/flake/register"
)

// newFlakeCtlCommand is the binary invoked as flake-ctl: flake-pilot's
// command line (flake-ctl/src/cli.rs) translated into `strata flake`, so
// scripts and docs written for flake-pilot keep working.
func newFlakeCtlCommand(env *Env) *cobra.Command {
	var user bool
	var rootDir string
	root := &cobra.Command{
		Use:     "flake-ctl",
		Short:   "Load and register flakes (flake-pilot's flake-ctl, implemented by strata flake)",
		Version: Version,
	}
	// run executes `strata flake [--user] ARGS…`.
	run := func(cmd *cobra.Command, args ...string) error {
		if user {
			args = append([]string{"--user"}, args...)
		}
		if rootDir != "" {
			args = append([]string{"--root", rootDir}, args...)
		}
		fc := newFlakeCommand(env)
		fc.SetArgs(args)
		fc.SetIn(env.Stdin)
		fc.SetOut(env.Stdout)
		fc.SetErr(env.Stderr)
		fc.SilenceErrors, fc.SilenceUsage = true, true
		return fc.ExecuteContext(cmd.Context())
	}
	reg := func() flake.Registry { return register.Where{Root: rootDir, User: user}.Registry(os.Getenv) }
	// --root is Strata's, as in strata flake (flake-pilot's flake-ctl has none).
	root.PersistentFlags().StringVar(&rootDir, "root", "", "operate on the system registry below this directory (default: $STRATA_FLAKE_ROOT, else /)")

	var format string
	list := &cobra.Command{
		Use:   "list [--user] [--format table|json|csv]",
		Short: "List registered flakes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "table":
				return run(cmd, "list")
			case "json":
				return run(cmd, "list", "--json")
			case "csv":
				return flakeCSV(env, reg(), "")
			}
			return fmt.Errorf("--format %q: use table, json or csv", format)
		},
	}
	list.Flags().StringVar(&format, "format", "table", "table, json or csv")
	list.Flags().BoolVar(&user, "user", false, "the caller's flakes (~/.config/flakes)")

	root.AddCommand(list, flakeCtlPodman(env, &user, run, reg), flakeCtlFirecracker(env, &user, run, reg))
	return root
}

type flakeRun func(cmd *cobra.Command, args ...string) error

// appendEach adds flag once per value.
func appendEach(args []string, flag string, vals []string) []string {
	for _, v := range vals {
		args = append(args, flag, v)
	}
	return args
}

// removeBy removes the flakes of an engine whose image (container or VM
// name) is img, as flake-ctl's remove --container/--vm does.
func removeBy(r flake.Registry, engine, img string, force bool) error {
	ents, err := r.List()
	if err != nil {
		return err
	}
	n := 0
	for _, e := range ents {
		if e.Engine != engine || e.Image != img {
			continue
		}
		if err := r.Remove(e.Name, "", force); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no %s flake uses %s (strata flake list shows the registered ones)", engine, img)
	}
	return nil
}

func flakeCtlPodman(env *Env, user *bool, run flakeRun, reg func() flake.Registry) *cobra.Command {
	cmd := &cobra.Command{Use: "podman", Short: "Load and register OCI applications"}
	cmd.PersistentFlags().BoolVar(user, "user", false, "the caller's flakes (~/.config/flakes)")

	var uri, oci string
	pull := &cobra.Command{Use: "pull --uri URI", Short: "Pull a container image", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if uri == "" {
				return errors.New("podman pull: --uri is required")
			}
			return run(c, "pull", "podman", uri)
		}}
	pull.Flags().StringVar(&uri, "uri", "", "image reference")
	load := &cobra.Command{Use: "load --oci FILE", Short: "Load a container image from an OCI archive", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if oci == "" {
				return errors.New("podman load: --oci is required")
			}
			if _, err := os.Stat(oci); err != nil {
				return fmt.Errorf("podman load --oci %s: %w", oci, err)
			}
			return run(c, "pull", "podman", oci)
		}}
	load.Flags().StringVar(&oci, "oci", "", "OCI archive")

	var (
		container, app, target, base           string
		layers, tars, paths, opts              []string
		resume, attach, checkDeps, info, force bool
	)
	register := &cobra.Command{Use: "register --container NAME --app PATH …", Short: "Register a container application", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if info {
				return errors.New("podman register --info is not supported: read /NAME.yaml from the image with podman image mount")
			}
			if container == "" || app == "" {
				return errors.New("podman register: --container and --app are required")
			}
			if force {
				_ = reg().Remove(filepath.Base(app), app, true)
			}
			args := []string{"register", "podman", "--container", container, "--app", app}
			if target != "" {
				args = append(args, "--target", target)
			}
			if base != "" {
				args = append(args, "--base", base)
			}
			args = appendEach(args, "--layer", layers)
			args = appendEach(args, "--include-tar", tars)
			args = appendEach(args, "--include-path", paths)
			args = appendEach(args, "--opt", opts)
			if resume {
				args = append(args, "--resume")
			}
			if attach {
				args = append(args, "--attach")
			}
			if checkDeps {
				args = append(args, "--check-host-dependencies")
			}
			return run(c, args...)
		}}
	rf := register.Flags()
	rf.StringVar(&container, "container", "", "container image")
	rf.StringVar(&app, "app", "", "host path of the application")
	rf.StringVar(&target, "target", "", "path of the application in the container")
	rf.StringVar(&base, "base", "", "base container (makes --container a delta)")
	rf.StringArrayVar(&layers, "layer", nil, "layer over the base (repeatable)")
	rf.StringArrayVar(&tars, "include-tar", nil, "tar archive to include (repeatable)")
	rf.StringArrayVar(&paths, "include-path", nil, "host path to include (repeatable)")
	rf.StringArrayVar(&opts, "opt", nil, `podman option (write "\--net host")`)
	rf.BoolVar(&resume, "resume", false, "resume the instance")
	rf.BoolVar(&attach, "attach", false, "attach to the instance")
	rf.BoolVar(&checkDeps, "check-host-dependencies", false, "check that includes exist on the host")
	rf.BoolVar(&info, "info", false, "print the image's flake template (not supported)")
	rf.BoolVar(&force, "force", false, "replace an existing registration")

	remove := flakeCtlRemove(run, reg, flake.EnginePodman, "container")
	show := flakeCtlShow(env, reg, flake.EnginePodman)
	cmd.AddCommand(pull, load, register, remove, show)
	return cmd
}

func flakeCtlFirecracker(env *Env, user *bool, run flakeRun, reg func() flake.Registry) *cobra.Command {
	cmd := &cobra.Command{Use: "firecracker", Short: "Load and register Firecracker applications"}
	cmd.PersistentFlags().BoolVar(user, "user", false, "the caller's flakes (~/.config/flakes)")

	var name, kis, rootfs, kernel, initrd string
	var pullForce bool
	pull := &cobra.Command{Use: "pull --name NAME (--kis-image URI | --rootfs URI --kernel URI [--initrd URI])", Short: "Fetch a VM image", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if kis != "" {
				return errors.New("firecracker pull --kis-image is not supported: unpack the KIS archive and pass --rootfs, --kernel and --initrd")
			}
			if name == "" || rootfs == "" || kernel == "" {
				return errors.New("firecracker pull: --name, --rootfs and --kernel are required")
			}
			args := []string{"pull", "vm", "--name", name, "--rootfs", rootfs, "--kernel", kernel}
			if initrd != "" {
				args = append(args, "--initrd", initrd)
			}
			return run(c, args...)
		}}
	pf := pull.Flags()
	pf.StringVar(&name, "name", "", "VM image name")
	pf.StringVar(&kis, "kis-image", "", "KIWI KIS image (not supported)")
	pf.StringVar(&rootfs, "rootfs", "", "root file system image")
	pf.StringVar(&kernel, "kernel", "", "kernel image")
	pf.StringVar(&initrd, "initrd", "", "initrd")
	pf.BoolVar(&pullForce, "force", false, "fetch again (always done)")

	var (
		vm, app, target, runAs, overlay string
		tars, paths                     []string
		resume, vsock, noNet, force     bool
	)
	register := &cobra.Command{Use: "register --vm NAME --app PATH …", Short: "Register a VM application", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if vm == "" || app == "" {
				return errors.New("firecracker register: --vm and --app are required")
			}
			if len(tars)+len(paths) > 0 && overlay == "" {
				return errors.New("firecracker register: --include-tar and --include-path need --overlay-size")
			}
			if force {
				_ = reg().Remove(filepath.Base(app), app, true)
			}
			args := []string{"register", "firecracker", "--vm", vm, "--app", app}
			for flag, v := range map[string]string{"--target": target, "--run-as": runAs, "--overlay-size": overlay} {
				if v != "" {
					args = append(args, flag, v)
				}
			}
			args = appendEach(args, "--include-tar", tars)
			args = appendEach(args, "--include-path", paths)
			for flag, on := range map[string]bool{"--resume": resume, "--force-vsock": vsock, "--no-net": noNet} {
				if on {
					args = append(args, flag)
				}
			}
			return run(c, args...)
		}}
	rf := register.Flags()
	rf.StringVar(&vm, "vm", "", "VM image name (from firecracker pull)")
	rf.StringVar(&app, "app", "", "host path of the application")
	rf.StringVar(&target, "target", "", "path of the application in the VM")
	rf.StringVar(&runAs, "run-as", "", "user to run the VM engine as")
	rf.StringVar(&overlay, "overlay-size", "", "writable overlay size, e.g. 20g")
	rf.StringArrayVar(&tars, "include-tar", nil, "tar archive to include (repeatable)")
	rf.StringArrayVar(&paths, "include-path", nil, "host path to include (repeatable)")
	rf.BoolVar(&resume, "resume", false, "resume the VM instance")
	rf.BoolVar(&vsock, "force-vsock", false, "use vsock also for one-shot launches")
	rf.BoolVar(&noNet, "no-net", false, "no network in the VM")
	rf.BoolVar(&force, "force", false, "replace an existing registration")

	remove := flakeCtlRemove(run, reg, flake.EngineFirecracker, "vm")
	show := flakeCtlShow(env, reg, flake.EngineFirecracker)
	cmd.AddCommand(pull, register, remove, show)
	return cmd
}

// flakeCtlRemove is "ENGINE remove (--IMAGEFLAG NAME | --app PATH)":
// every flake of an image, or the one at a path.
func flakeCtlRemove(run flakeRun, reg func() flake.Registry, engine, imageFlag string) *cobra.Command {
	var image, app string
	var force bool
	cmd := &cobra.Command{Use: "remove (--" + imageFlag + " NAME | --app PATH)", Short: "Remove " + engine + " applications", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch {
			case app != "":
				args := []string{"remove", filepath.Base(app), "--app", app}
				if force {
					args = append(args, "--force")
				}
				return run(c, args...)
			case image != "":
				return removeBy(reg(), engine, image, force)
			}
			return fmt.Errorf("%s remove: give --%s NAME or --app PATH", engine, imageFlag)
		}}
	cmd.Flags().StringVar(&image, imageFlag, "", "remove every flake of this "+imageFlag)
	cmd.Flags().StringVar(&app, "app", "", "remove the flake at this path")
	cmd.Flags().BoolVar(&force, "force", false, "also remove broken registrations")
	return cmd
}

// flakeCtlShow is "ENGINE show [--format table|json|csv]".
func flakeCtlShow(env *Env, reg func() flake.Registry, engine string) *cobra.Command {
	var format string
	cmd := &cobra.Command{Use: "show [--format table|json|csv]", Short: "List " + engine + " flakes", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return flakeEngineList(env, reg(), engine, format) }}
	cmd.Flags().StringVar(&format, "format", "table", "table, json or csv")
	return cmd
}

// flakeEngineList prints one engine's flakes as flake-ctl's show does.
func flakeEngineList(env *Env, r flake.Registry, engine, format string) error {
	ents, err := r.List()
	if err != nil {
		return err
	}
	var mine []flake.Entry
	for _, e := range ents {
		if e.Engine == engine {
			mine = append(mine, e)
		}
	}
	switch format {
	case "json":
		if mine == nil {
			mine = []flake.Entry{}
		}
		return writeJSON(env.Stdout, "pretty", mine)
	case "csv":
		return flakeCSV(env, r, engine)
	case "table":
		t := newTable("NAME", "TARGET", "HOST APP PATH", "IMAGE")
		for _, e := range mine {
			t.row(e.Name, e.Target, e.HostApp, e.Image)
		}
		return t.write(env.Stdout, true)
	}
	return fmt.Errorf("--format %q: use table, json or csv", format)
}

func flakeCSV(env *Env, r flake.Registry, engine string) error {
	ents, err := r.List()
	if err != nil {
		return err
	}
	w := csv.NewWriter(env.Stdout)
	_ = w.Write([]string{"name", "engine", "target", "host_app_path", "image"})
	for _, e := range ents {
		if engine != "" && e.Engine != engine {
			continue
		}
		_ = w.Write([]string{e.Name, e.Engine, e.Target, e.HostApp, e.Image})
	}
	w.Flush()
	return w.Error()
}
