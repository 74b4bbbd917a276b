package cli

import (
	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/imageclass"
)

const (
	classSysext  = imageclass.Sysext
	classConfext = imageclass.Confext
)

func newExtCommand(env *Env, use string, class imageclass.Class) *cobra.Command {
	return &cobra.Command{Use: use, Short: "Merge " + class.String() + " images"}
}
