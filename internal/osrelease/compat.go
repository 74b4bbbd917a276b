package osrelease

import (
	"fmt"
	"strings"
)

// Keys that differ between the two extension classes; pass the pair that
// matches the image class to Compatible.
const (
	KeySysextLevel  = "SYSEXT_LEVEL"
	KeySysextScope  = "SYSEXT_SCOPE"
	KeyConfextLevel = "CONFEXT_LEVEL"
	KeyConfextScope = "CONFEXT_SCOPE"
)

// Scopes a host can be in, and the extra one extensions may list for
// portable services.
const (
	ScopeSystem   = "system"
	ScopeInitrd   = "initrd"
	ScopePortable = "portable"
)

// Rule values of a Decision. The first group names the check that rejected
// an extension; the second names the check that accepted it.
const (
	RuleNoReleaseData = "no-release-data"
	RuleHostID        = "host-id" // the host itself has no ID
	RuleScope         = "scope"
	RuleArchitecture  = "architecture"
	RuleID            = "id"
	RuleLevel         = "level"
	RuleVersionID     = "version-id"

	RuleAnyOS   = "id-any"  // extension ID=_any: no OS or version check
	RuleRolling = "rolling" // host has neither VERSION_ID nor a level
	// An accepted extension may also carry RuleLevel or RuleVersionID
	// (that value matched the host), or RuleID when the host has a level
	// but no VERSION_ID and the extension declares no level, so only the
	// ID was checked.
)

// Host is what an extension is checked against.
type Host struct {
	Release Release // the host's os-release
	// Scope is ScopeSystem, or ScopeInitrd when running in an initrd
	// (systemd ≥ 260: when <root>/etc/initrd-release exists). Empty skips
	// the scope check, as systemd does when it passes no scope.
	Scope string
	// Architecture is systemd's name for the host architecture, see
	// sdparse.NativeArchitecture and sdparse.ArchitectureFromUname.
	Architecture string
}

// Decision is the outcome of Compatible.
type Decision struct {
	OK bool
	// Reason is one human-readable line saying why the extension is
	// ignored; empty when OK.
	Reason string
	// Rule is a stable machine-readable key for the deciding check, see
	// the Rule* constants.
	Rule string
}

// Compatible decides whether an extension with release data ext may be
// merged on host, following systemd's extension_release_validate() check
// by check and in the same order, so that the first reason reported is the
// one systemd would log:
//
//  1. no release data at all → ignore;
//  2. host scope not listed in scopeKey (absent means "system portable";
//     present but empty means no scope at all) → ignore;
//  3. ARCHITECTURE set, not "_any" and not the host's → ignore;
//  4. no ID → ignore; ID=_any → accept without version checks;
//  5. ID neither the host ID nor one of its ID_LIKE words → ignore;
//  6. host with neither VERSION_ID nor levelKey (rolling release) → accept;
//  7. if host and extension both set levelKey, those must be equal;
//     otherwise, if the host has a VERSION_ID, the extension's must be
//     present and equal. All comparisons are exact string comparisons.
//
// levelKey is KeySysextLevel or KeyConfextLevel and scopeKey
// KeySysextScope or KeyConfextScope. A host without ID is a hard error in
// systemd (raised before any extension is looked at); here it yields a
// Decision with RuleHostID.
func Compatible(ext Release, host Host, levelKey, scopeKey string) Decision {
	hostID := host.Release["ID"]
	if hostID == "" {
		return reject(RuleHostID, "host os-release has no ID")
	}

	if len(ext) == 0 {
		return Decision{Rule: RuleNoReleaseData, Reason: "carries no release data"}
	}

	if host.Scope != "" {
		scope, set := ext[scopeKey]
		if !set {
			// Extensions are meant for the booted system and portable
			// services unless they say otherwise, so in the initrd
			// they must opt in.
			scope = ScopeSystem + " " + ScopePortable
		}
		if !containsWord(scope, host.Scope) {
			if set {
				return reject(RuleScope, fmt.Sprintf("scope %s not in %s %s", show(host.Scope), scopeKey, showQuoted(scope)))
			}
			return reject(RuleScope, fmt.Sprintf("scope %s not in %s (unset, defaults to %q)", show(host.Scope), scopeKey, scope))
		}
	}

	// An empty ARCHITECTURE= counts as unset.
	if arch := ext["ARCHITECTURE"]; arch != "" && arch != "_any" && arch != host.Architecture {
		return reject(RuleArchitecture, fmt.Sprintf("ARCHITECTURE %s ≠ host %s", show(arch), show(host.Architecture)))
	}

	id := ext["ID"]
	if id == "" {
		return reject(RuleID, "no ID")
	}
	// For OS-independent content (static binaries, scripts): matches any
	// host, and no version is looked at. Scope and architecture still are.
	if id == "_any" {
		return Decision{OK: true, Rule: RuleAnyOS}
	}
	if id != hostID {
		idLike, hasIDLike := host.Release["ID_LIKE"]
		if !containsWord(idLike, id) {
			if hasIDLike && len(Words(idLike)) > 0 {
				return reject(RuleID, fmt.Sprintf("ID %s is neither host ID %s nor in ID_LIKE %s", show(id), show(hostID), showQuoted(idLike)))
			}
			return reject(RuleID, fmt.Sprintf("ID %s ≠ host ID %s", show(id), show(hostID)))
		}
	}

	hostVersion := host.Release["VERSION_ID"]
	hostLevel := host.Release[levelKey]
	// Rolling releases (Arch, Tumbleweed, …) have nothing to compare.
	if hostVersion == "" && hostLevel == "" {
		return Decision{OK: true, Rule: RuleRolling}
	}

	// A level is the host's promise of a stable extension ABI across
	// OS versions, so when both sides declare one it replaces the
	// VERSION_ID comparison.
	if extLevel := ext[levelKey]; hostLevel != "" && extLevel != "" {
		if extLevel != hostLevel {
			return reject(RuleLevel, fmt.Sprintf("%s %s ≠ host %s", levelKey, show(extLevel), show(hostLevel)))
		}
		return Decision{OK: true, Rule: RuleLevel}
	}
	if hostVersion != "" {
		extVersion := ext["VERSION_ID"]
		if extVersion == "" {
			return reject(RuleVersionID, fmt.Sprintf("no VERSION_ID, host has %s", show(hostVersion)))
		}
		if extVersion != hostVersion {
			return reject(RuleVersionID, fmt.Sprintf("VERSION_ID %s ≠ host %s", show(extVersion), show(hostVersion)))
		}
		return Decision{OK: true, Rule: RuleVersionID}
	}
	// Host has a level but no VERSION_ID, and the extension declares no
	// level: systemd accepts on the ID match alone.
	return Decision{OK: true, Rule: RuleID}
}

func reject(rule, why string) Decision {
	return Decision{Rule: rule, Reason: "incompatible: " + why}
}

// show renders a value from release data for a Reason: bare when harmless,
// quoted when empty or odd, so a hostile image cannot break the line.
func show(s string) string { return quoteForMsg(s) }

// showQuoted always quotes, for lists whose word boundaries matter.
func showQuoted(s string) string {
	const maxShown = 64
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Words splits a list-valued field (ID_LIKE, SYSEXT_SCOPE, …) the way
// systemd does: on spaces, tabs, CR and LF only (not on other Unicode
// spaces), dropping empty words. It returns nil when there are no words.
func Words(v string) []string {
	w := strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(w) == 0 {
		return nil
	}
	return w
}

func containsWord(list, w string) bool {
	for _, x := range Words(list) {
		if x == w {
			return true
		}
	}
	return false
}

// Get returns the value of key, or "" when absent.
func (r Release) Get(key string) string { return r[key] }

// IDLike returns the words of ID_LIKE (the OSes this one derives from,
// closest first), or nil when unset.
func (r Release) IDLike() []string { return Words(r["ID_LIKE"]) }

// Scopes returns the scopes an extension declares in scopeKey and whether
// the key was set at all; unset means the default, "system portable".
func (r Release) Scopes(scopeKey string) ([]string, bool) {
	v, ok := r[scopeKey]
	if !ok {
		return []string{ScopeSystem, ScopePortable}, false
	}
	return Words(v), true
}
