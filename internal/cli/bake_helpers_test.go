package cli

import "github.com/stratalinux/strata/internal/release"

func hostArchForTest() string { return release.HostArch() }
