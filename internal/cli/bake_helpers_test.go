package cli

import "github.com/stratalinux/strata/internal/bake"

func hostArchForTest() string { return bake.HostArch() }
