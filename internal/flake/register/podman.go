package register

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/stratalinux/strata/internal/flake/runas"
)

// PodmanImages asks podman (image exists) as the user the flake runs as.
type PodmanImages struct{}

// Check reports the first image missing from the storage.
func (PodmanImages) Check(ctx context.Context, u *runas.User, images []string) error {
	podman, err := exec.LookPath("podman")
	if err != nil {
		return errors.New("podman is not installed (apt-get install podman): podman flakes need it")
	}
	where, as := "podman's storage", ""
	if u != nil {
		if err := u.EnsureRuntimeDir(); err != nil {
			return err
		}
		where, as = "the podman storage of user "+u.Name, fmt.Sprintf(" as %s (e.g. runuser -u %s -- podman pull …)", u.Name, u.Name)
	}
	for _, img := range images {
		c := exec.CommandContext(ctx, podman, "image", "exists", img)
		if u != nil {
			c.Env, c.SysProcAttr = u.Env(os.Environ()), u.SysProcAttr()
		}
		if err := c.Run(); err != nil {
			return fmt.Errorf("image %s is not in %s; pull or load it first%s (strata flake pull podman %s)", img, where, as, img)
		}
	}
	return nil
}
