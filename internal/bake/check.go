package bake

import (
	"fmt"

	"github.com/stratalinux/strata/internal/release"
)

// CheckRelease validates an existing extension-release against what the
// bake was asked for: ID present, ARCHITECTURE matching, level keys of the
// right class. It returns one error per problem.
func CheckRelease(fields map[string]string, want release.Release) []error {
	var errs []error
	if fields["ID"] == "" {
		errs = append(errs, fmt.Errorf("ID= is missing (use ID=_any for any OS)"))
	}
	if a, ok := fields["ARCHITECTURE"]; ok && want.Arch != release.AnyArch {
		if n, err := release.NormalizeArch(a); err != nil || n != want.Arch {
			errs = append(errs, fmt.Errorf("ARCHITECTURE=%s does not match the requested architecture %s", a, want.Arch))
		}
	}
	other := want.Class.Other()
	if _, ok := fields[other.LevelKey()]; ok {
		errs = append(errs, fmt.Errorf("%s= belongs in a %s, but this is a %s", other.LevelKey(), other, want.Class))
	}
	if fields["ID"] == "_any" && (fields["VERSION_ID"] != "" || fields[want.Class.LevelKey()] != "") {
		errs = append(errs, fmt.Errorf("ID=_any with VERSION_ID or %s: systemd ignores the version when ID is _any", want.Class.LevelKey()))
	}
	return errs
}
