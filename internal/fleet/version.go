package fleet

import "github.com/stratalinux/strata/internal/version"

// ValidVersion reports whether v is a version the fleet server accepts
// from nodes and admins. Nebraska wants semver; Strata also takes the
// dotted numbers extension images carry ("27.1"), so the rule is: starts
// with a digit, and only systemd's version characters (which excludes
// spaces and "/"). "notaversion", "latest" or "v2" would otherwise compare
// below every release and be granted an update.
func ValidVersion(v string) bool {
	return v != "" && v[0] >= '0' && v[0] <= '9' && version.IsValid(v)
}
