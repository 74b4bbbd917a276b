package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/merge"
	"github.com/stratalinux/strata/internal/sdparse"
)

type testFlags struct {
	class     string
	osRelease string
	force     bool
	mutable   string
}

// newTestCommand is "strata test IMAGE -- CMD": prove an extension works
// on this machine before publishing it, without touching the host.
func newTestCommand(env *Env) *cobra.Command {
	f := &testFlags{}
	cmd := &cobra.Command{
		Use:   "test IMAGE [--os-release FILE] -- CMD [ARG…]",
		Short: "Run CMD with IMAGE merged over this machine's /usr (or /etc), in a private mount namespace",
		Long: `Merge IMAGE over this machine's hierarchies inside a private mount
namespace, run CMD there and exit with its exit code. The host's own
mounts are never changed. With --os-release the compatibility check uses
that file instead of the host's.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return fmt.Errorf("usage: strata test IMAGE -- CMD [ARG…] (put -- before the command)")
			}
			return runTest(env, f, args[0], args[1:])
		},
	}
	cmd.Flags().StringVar(&f.class, "class", "", "sysext or confext (default: from the image's release file)")
	cmd.Flags().StringVar(&f.osRelease, "os-release", "", "judge compatibility against this os-release file")
	cmd.Flags().BoolVar(&f.force, "force", false, "merge even if the image does not match the host")
	cmd.Flags().StringVar(&f.mutable, "mutable", "ephemeral", "mutable mode inside the test (default ephemeral: writes vanish)")
	return cmd
}

// newMergeExecCommand is the hidden half of "strata test": it runs in a
// fresh mount namespace, merges and execs the command.
func newMergeExecCommand(env *Env) *cobra.Command {
	f := &testFlags{}
	cmd := &cobra.Command{
		Use:    "__merge-exec IMAGE -- CMD…",
		Hidden: true,
		Args:   cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return mergeExec(env, f, args[0], args[1:])
		},
	}
	cmd.Flags().StringVar(&f.class, "class", "", "")
	cmd.Flags().StringVar(&f.osRelease, "os-release", "", "")
	cmd.Flags().BoolVar(&f.force, "force", false, "")
	cmd.Flags().StringVar(&f.mutable, "mutable", "ephemeral", "")
	return cmd
}

func runTest(env *Env, f *testFlags, imagePath string, argv []string) error {
	if _, err := os.Stat(imagePath); err != nil {
		return fmt.Errorf("test %s: %w", imagePath, err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(imagePath)
	if err != nil {
		return err
	}
	args := []string{"__merge-exec", abs, "--mutable=" + f.mutable}
	if f.class != "" {
		args = append(args, "--class="+f.class)
	}
	if f.osRelease != "" {
		osr, err := filepath.Abs(f.osRelease)
		if err != nil {
			return err
		}
		args = append(args, "--os-release="+osr)
	}
	if f.force {
		args = append(args, "--force")
	}
	args = append(append(args, "--"), argv...)
	c := exec.Command(self, args...)
	c.Stdin, c.Stdout, c.Stderr = env.Stdin, env.Stdout, env.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
		env.Log.Debug(fmt.Sprintf("%s exited with status %d", argv[0], code))
		return &ExitError{Code: code}
	}
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("test %s: creating a private mount namespace needs root (CAP_SYS_ADMIN): %w", imagePath, err)
		}
		return fmt.Errorf("test %s: %w", imagePath, err)
	}
	return nil
}

func mergeExec(env *Env, f *testFlags, imagePath string, argv []string) error {
	if err := merge.MakeMountsPrivate(); err != nil {
		return err
	}
	img, class, renamed, err := merge.TrialImage(imagePath, f.class, sdparse.NativeArchitecture())
	if renamed {
		noteBakedName(env, img.Path, img.Name)
	}
	if err != nil {
		return err
	}
	e, err := merge.NewTrial(imagePath, img, class, merge.TrialOptions{
		OSRelease: f.osRelease, Force: f.force, Mutable: f.mutable, Log: env.Log})
	if err != nil {
		return err
	}
	if err := merge.RunTrial(context.Background(), imagePath, e); err != nil {
		return err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return &ExitError{Code: 127, Err: fmt.Errorf("test %s: %w", imagePath, err)}
	}
	return syscall.Exec(path, argv, os.Environ())
}

// bakedName names an image given explicitly after its extension-release
// when its file is named as strata bake names it (hello-1.0-x86-64.raw
// carrying extension-release.hello), and says so: systemd-sysext would
// want the file named hello.raw, and merge keeps to that.
func bakedName(env *Env, img image.Image, c imageclass.Class) (image.Image, bool) {
	n, ok := merge.BakedName(img, c, sdparse.NativeArchitecture())
	if ok {
		noteBakedName(env, img.Path, n.Name)
	}
	return n, ok
}

func noteBakedName(env *Env, file, name string) {
	fmt.Fprintf(env.Stderr, "%s: extension name '%s' taken from its extension-release.%s\n", filepath.Base(file), name, name)
}
