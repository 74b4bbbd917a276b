package merge

import (
	"fmt"
	"sort"
	"strings"
)

// Policy is a parsed systemd image policy (systemd.image-policy(7)):
// per partition designator, the protection levels an image may use.
// Strata opens unprotected filesystems only (no verity, no signatures, no
// encryption), so what it enforces is whether a policy admits an
// unprotected root or usr partition. The zero Policy allows everything.
type Policy struct {
	text  string
	parts map[string]map[string]bool // designator → allowed flags
	deflt map[string]bool
}

var policyDesignators = map[string]bool{
	"root": true, "usr": true, "home": true, "srv": true, "esp": true, "xbootldr": true, "swap": true,
	"root-verity": true, "root-verity-sig": true, "usr-verity": true, "usr-verity-sig": true, "tmp": true, "var": true,
}

var policyFlags = map[string]bool{
	"verity": true, "signed": true, "encrypted": true, "unprotected": true, "unused": true, "absent": true,
	"open": true, "ignore": true,
	"read-only-on": true, "read-only-off": true, "growfs-on": true, "growfs-off": true,
}

// ParsePolicy parses a policy string. "*" allows everything, "-" denies
// everything, "~" ignores everything.
func ParsePolicy(s string) (Policy, error) {
	p := Policy{text: s, parts: map[string]map[string]bool{}}
	switch s {
	case "", "*":
		return Policy{text: s}, nil
	case "-":
		p.deflt = map[string]bool{"unused": true, "absent": true}
		return p, nil
	case "~":
		p.deflt = map[string]bool{"unused": true, "absent": true, "ignore": true}
		return p, nil
	}
	p.deflt = map[string]bool{"ignore": true, "unused": true, "absent": true}
	for _, item := range strings.Split(s, ":") {
		name, flags, ok := strings.Cut(item, "=")
		if !ok {
			return Policy{}, fmt.Errorf("image policy %q: item %q lacks '='", s, item)
		}
		set := map[string]bool{}
		for _, f := range strings.Split(flags, "+") {
			switch f {
			case "":
				continue
			case "*":
				f = "open"
			case "-":
				set["unused"], set["absent"] = true, true
				continue
			case "~":
				f = "ignore"
			}
			if !policyFlags[f] {
				return Policy{}, fmt.Errorf("image policy %q: unknown flag %q", s, f)
			}
			set[f] = true
		}
		if name == "" {
			p.deflt = set
			continue
		}
		if !policyDesignators[name] {
			return Policy{}, fmt.Errorf("image policy %q: unknown partition designator %q", s, name)
		}
		if _, dup := p.parts[name]; dup {
			return Policy{}, fmt.Errorf("image policy %q: partition %q listed twice", s, name)
		}
		p.parts[name] = set
	}
	return p, nil
}

// String returns the policy as given.
func (p Policy) String() string {
	if p.text == "" {
		return "*"
	}
	return p.text
}

// AllowsUnprotected reports whether an unprotected partition with the
// given designator ("root" or "usr") may be used.
func (p Policy) AllowsUnprotected(designator string) error {
	if p.parts == nil && p.deflt == nil {
		return nil
	}
	flags, ok := p.parts[designator]
	if !ok {
		flags = p.deflt
	}
	if flags["open"] || flags["unprotected"] {
		return nil
	}
	var have []string
	for f := range flags {
		have = append(have, f)
	}
	sort.Strings(have)
	return fmt.Errorf("image policy %s does not allow an unprotected %s partition (allowed: %s); pass --image-policy= to change it", p, designator, strings.Join(have, "+"))
}
