// Package imagepolicy parses, prints and applies systemd's image policies
// (systemd.image-policy(7)): which partitions of a disk image may be used,
// and how they must be protected (verity, signed, encrypted, unprotected),
// or whether they must be unused or absent. The syntax, the canonical
// string form and the decisions follow systemd's src/shared/image-policy.c
// and dissect-image.c, so `--image-policy=` means here what it means there.
// Everything here is pure: values in, values out.
package imagepolicy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Designator names a partition role, in systemd's order (PartitionDesignator);
// the canonical string lists rules in this order.
type Designator int

// The designators systemd knows.
const (
	Root Designator = iota
	Usr
	Home
	Srv
	ESP
	XBootLdr
	Swap
	RootVerity
	UsrVerity
	RootVeritySig
	UsrVeritySig
	Tmp
	Var
	numDesignators
)

var designatorNames = [numDesignators]string{
	"root", "usr", "home", "srv", "esp", "xbootldr", "swap",
	"root-verity", "usr-verity", "root-verity-sig", "usr-verity-sig", "tmp", "var",
}

func (d Designator) String() string {
	if d < 0 || d >= numDesignators {
		return fmt.Sprintf("designator(%d)", int(d))
	}
	return designatorNames[d]
}

// ParseDesignator maps a name such as "usr" or "root-verity-sig" to its designator.
func ParseDesignator(s string) (Designator, error) {
	for i, n := range designatorNames {
		if n == s {
			return Designator(i), nil
		}
	}
	return 0, fmt.Errorf("unknown partition designator %q (want one of %s)", s, strings.Join(designatorNames[:], ", "))
}

// Designators lists all designators in order.
func Designators() []Designator {
	out := make([]Designator, numDesignators)
	for i := range out {
		out[i] = Designator(i)
	}
	return out
}

// VerityOf is the verity partition of a data designator (root → root-verity), or -1.
func VerityOf(d Designator) Designator {
	switch d {
	case Root:
		return RootVerity
	case Usr:
		return UsrVerity
	}
	return -1
}

// VeritySigOf is the verity-signature partition of a data designator, or -1.
func VeritySigOf(d Designator) Designator {
	switch d {
	case Root:
		return RootVeritySig
	case Usr:
		return UsrVeritySig
	}
	return -1
}

func verityToData(d Designator) Designator {
	switch d {
	case RootVerity:
		return Root
	case UsrVerity:
		return Usr
	}
	return -1
}

func veritySigToData(d Designator) Designator {
	switch d {
	case RootVeritySig:
		return Root
	case UsrVeritySig:
		return Usr
	}
	return -1
}

// Flags is a set of policy flags, bit for bit systemd's PartitionPolicyFlags.
type Flags uint32

// The flags. Protection/use flags first, then the GPT-flag and filesystem qualifiers.
const (
	Verity Flags = 1 << iota
	Signed
	Encrypted
	Unprotected
	Unused
	Absent
	ReadOnlyOff
	ReadOnlyOn
	GrowFSOff
	GrowFSOn
	FSBtrfs
	FSErofs
	FSExt4
	FSF2fs
	FSSquashfs
	FSVfat
	FSXfs

	// Open allows everything; Ignore allows the partition only unused or absent.
	Open   = Verity | Signed | Encrypted | Unprotected | Unused | Absent
	Ignore = Unused | Absent

	useMask      = Open
	readOnlyMask = ReadOnlyOff | ReadOnlyOn
	growFSMask   = GrowFSOff | GrowFSOn
	fsMask       = FSBtrfs | FSErofs | FSExt4 | FSF2fs | FSSquashfs | FSVfat | FSXfs
)

// flagNames maps each word systemd parses to its bits.
var flagNames = []struct {
	name string
	f    Flags
}{
	{"verity", Verity}, {"signed", Signed}, {"encrypted", Encrypted}, {"unprotected", Unprotected},
	{"unused", Unused}, {"absent", Absent}, {"open", Open}, {"ignore", Ignore},
	{"read-only-on", ReadOnlyOn}, {"read-only-off", ReadOnlyOff}, {"growfs-on", GrowFSOn}, {"growfs-off", GrowFSOff},
	{"btrfs", FSBtrfs}, {"erofs", FSErofs}, {"ext4", FSExt4}, {"f2fs", FSF2fs},
	{"squashfs", FSSquashfs}, {"vfat", FSVfat}, {"xfs", FSXfs},
}

// ParseFlags parses "verity+signed+absent"; "" and "-" are no flags.
func ParseFlags(s string) (Flags, error) {
	if s == "" || s == "-" {
		return 0, nil
	}
	var f Flags
	for _, w := range strings.Split(s, "+") {
		w = strings.TrimSpace(w)
		ff, ok := flagByName(w)
		if !ok {
			return 0, fmt.Errorf("unknown partition policy flag %q", w)
		}
		f |= ff
	}
	return f, nil
}

func flagByName(w string) (Flags, bool) {
	for _, n := range flagNames {
		if n.name == w {
			return n.f, true
		}
	}
	return 0, false
}

// extend fills unspecified parts with "don't care", as partition_policy_flags_extend does.
func (f Flags) extend() Flags {
	if f&useMask == 0 {
		f |= Open
	}
	if f&readOnlyMask == 0 {
		f |= readOnlyMask
	}
	if f&growFSMask == 0 {
		f |= growFSMask
	}
	return f
}

// Format prints flags the short way systemd does (simplify=true): "open" and
// "ignore" for those sets, read-only/growfs qualifiers only when they restrict.
func (f Flags) Format() string {
	var l []string
	switch f & useMask {
	case Open:
		l = append(l, "open")
	case Ignore:
		l = append(l, "ignore")
	default:
		for _, n := range []struct {
			f Flags
			s string
		}{{Verity, "verity"}, {Signed, "signed"}, {Encrypted, "encrypted"}, {Unprotected, "unprotected"}, {Unused, "unused"}, {Absent, "absent"}} {
			if f&n.f != 0 {
				l = append(l, n.s)
			}
		}
	}
	if (f&ReadOnlyOn == 0) != (f&ReadOnlyOff == 0) {
		if f&ReadOnlyOn != 0 {
			l = append(l, "read-only-on")
		} else {
			l = append(l, "read-only-off")
		}
	}
	if (f&GrowFSOn == 0) != (f&GrowFSOff == 0) {
		if f&GrowFSOff != 0 {
			l = append(l, "growfs-off")
		} else {
			l = append(l, "growfs-on")
		}
	}
	for _, n := range []struct {
		f Flags
		s string
	}{{FSBtrfs, "btrfs"}, {FSErofs, "erofs"}, {FSExt4, "ext4"}, {FSF2fs, "f2fs"}, {FSSquashfs, "squashfs"}, {FSVfat, "vfat"}, {FSXfs, "xfs"}} {
		if f&n.f != 0 {
			l = append(l, n.s)
		}
	}
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, "+")
}

// Policy is a parsed image policy: per-designator rules and the default for the rest.
type Policy struct {
	rules   map[Designator]Flags
	Default Flags
}

// Errors a caller can tell apart (systemd's ENOTUNIQ, EBADSLT, EBADRQC).
var (
	ErrDuplicate         = errors.New("duplicate rule in image policy")
	ErrUnknownDesignator = errors.New("unknown partition type in image policy")
	ErrUnknownFlag       = errors.New("unknown partition policy flag in image policy")
)

// maxPolicyLen bounds the input; a policy with every designator and flag is well under 2 KiB.
const maxPolicyLen = 64 << 10

// Parse reads a policy string: "*" (allow everything), "-" or "" (ignore
// everything), "~" (everything absent), or rules "DESIGNATOR=FLAGS" joined by
// ":", where an empty designator ("=FLAGS") sets the default.
func Parse(s string) (Policy, error) {
	if len(s) > maxPolicyLen {
		return Policy{}, fmt.Errorf("image policy of %d bytes is longer than %d", len(s), maxPolicyLen)
	}
	switch s {
	case "", "-":
		return Policy{Default: Ignore}, nil
	case "*":
		return Policy{Default: Open}, nil
	case "~":
		return Policy{Default: Absent}, nil
	}
	p := Policy{rules: map[Designator]Flags{}, Default: Ignore}
	defaultSet := false
	for _, e := range strings.Split(s, ":") {
		if e == "" {
			return Policy{}, fmt.Errorf("image policy %q: empty rule (want DESIGNATOR=FLAGS joined by ':')", s)
		}
		ds, fs, ok := strings.Cut(e, "=")
		if !ok {
			return Policy{}, fmt.Errorf("image policy %q: missing '=' in %q (want DESIGNATOR=FLAGS)", s, e)
		}
		ds = strings.TrimSpace(ds)
		flags, err := ParseFlags(strings.TrimSpace(fs))
		if err != nil {
			return Policy{}, fmt.Errorf("%w %q: %v", ErrUnknownFlag, s, err)
		}
		if ds == "" {
			if defaultSet {
				return Policy{}, fmt.Errorf("%w %q: the default (=FLAGS) is given more than once", ErrDuplicate, s)
			}
			defaultSet = true
			p.Default = flags
			continue
		}
		d, err := ParseDesignator(ds)
		if err != nil {
			return Policy{}, fmt.Errorf("%w %q: %v", ErrUnknownDesignator, s, err)
		}
		if _, dup := p.rules[d]; dup {
			return Policy{}, fmt.Errorf("%w %q: %s is given more than once", ErrDuplicate, s, d)
		}
		p.rules[d] = flags
	}
	return p, nil
}

// MustParse is Parse for policies written in the program; it panics on a typo there.
func MustParse(s string) Policy {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// Rule returns the explicit rule for d, if the policy has one.
func (p Policy) Rule(d Designator) (Flags, bool) {
	f, ok := p.rules[d]
	return f, ok
}

// normalize is partition_policy_normalized_flags: fill in don't-cares and
// drop bits that make no sense for the designator.
func normalize(d Designator, f Flags) Flags {
	f = f.extend()
	if verityToData(d) >= 0 || veritySigToData(d) >= 0 {
		f &^= Verity | Signed | Encrypted
	}
	if VerityOf(d) < 0 && verityToData(d) < 0 && veritySigToData(d) < 0 {
		f &^= Verity | Signed
	}
	if f&useMask == Absent {
		f &^= readOnlyMask | growFSMask
	}
	return f
}

// get is image_policy_get: the explicit or synthesized rule, ok=false if neither.
func (p Policy) get(d Designator) (Flags, bool) {
	if f, ok := p.rules[d]; ok {
		return normalize(d, f), true
	}
	if dd := verityToData(d); dd >= 0 {
		df, ok := p.get(dd)
		if !ok || df&(Signed|Verity) == 0 {
			return 0, false
		}
		return normalize(d, Unprotected|df&(Unused|Absent)|df&(readOnlyMask|growFSMask)), true
	}
	if dd := veritySigToData(d); dd >= 0 {
		df, ok := p.get(dd)
		if !ok || df&Signed == 0 {
			return 0, false
		}
		return normalize(d, Unprotected|df&(Unused|Absent)|df&(readOnlyMask|growFSMask)), true
	}
	return 0, false
}

// Effective is what the policy says for d after filling in defaults
// (image_policy_get_exhaustively).
func (p Policy) Effective(d Designator) Flags {
	if f, ok := p.get(d); ok {
		return f
	}
	return normalize(d, p.Default)
}

func (p Policy) allMatch(want Flags) bool {
	if p.Default.extend() != want.extend() {
		return false
	}
	for _, d := range Designators() {
		if p.Effective(d) != normalize(d, want) {
			return false
		}
	}
	return true
}

// Format prints the canonical (simplified) string systemd prints for the policy.
func (p Policy) Format() string {
	switch {
	case p.allMatch(Open):
		return "*"
	case p.allMatch(Ignore):
		return "-"
	case p.allMatch(Absent):
		return "~"
	}
	ds := make([]Designator, 0, len(p.rules))
	for d := range p.rules {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	var parts []string
	for _, d := range ds {
		// systemd compares the raw rule with the normalized default here.
		if normalize(d, p.Default) == p.rules[d] {
			continue
		}
		parts = append(parts, d.String()+"="+p.rules[d].Format())
	}
	if p.Default.extend() != Ignore.extend() {
		parts = append(parts, "="+p.Default.Format())
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ":")
}

// String is Format.
func (p Policy) String() string { return p.Format() }

// Equivalent tells whether two policies decide every partition the same way.
func (p Policy) Equivalent(o Policy) bool {
	if p.Default.extend() != o.Default.extend() {
		return false
	}
	for _, d := range Designators() {
		if p.Effective(d) != o.Effective(d) {
			return false
		}
	}
	return true
}

// Class is the kind of extension image, for the default policies.
type Class int

// The extension classes.
const (
	Sysext Class = iota
	Confext
)

// Default is the policy systemd-sysext/-confext (v254+) applies when
// --image-policy= is not given: root and /usr (sysext) or root (confext) in
// any protection, or absent; everything else ignored.
func Default(c Class) Policy {
	if c == Confext {
		return MustParse("root=verity+signed+encrypted+unprotected+absent")
	}
	return MustParse("root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent")
}

// Strict is the signed-only policy systemd uses for extensions that came from
// an untrusted place (the initrd's /.extra/ directories, put there by systemd-stub).
func Strict(c Class) Policy {
	if c == Confext {
		return MustParse("root=signed+absent")
	}
	return MustParse("root=signed+absent:usr=signed+absent")
}

// Pick chooses the policy for an extension image as systemd-sysext does: the
// explicit one if given; in the initrd, Strict for /.extra/{,global_}sysext
// and confext, and deny ("~") for anything else under /.extra/; else Default.
func Pick(explicit *Policy, c Class, path string, inInitrd bool) Policy {
	if explicit != nil {
		return *explicit
	}
	if inInitrd {
		for _, pre := range []string{"/.extra/sysext/", "/.extra/global_sysext/"} {
			if strings.HasPrefix(path, pre) {
				return Strict(Sysext)
			}
		}
		for _, pre := range []string{"/.extra/confext/", "/.extra/global_confext/"} {
			if strings.HasPrefix(path, pre) {
				return Strict(Confext)
			}
		}
		if strings.HasPrefix(path, "/.extra/") {
			return Policy{Default: Absent}
		}
	}
	return Default(c)
}

// Protection is how a partition that was found is protected; Absent means it was not found.
type Protection int

// The protections, as dissect-image classifies partitions.
const (
	ProtAbsent Protection = iota
	ProtUnprotected
	ProtVerity
	ProtSigned
	ProtEncrypted
)

func (pr Protection) flag() Flags {
	switch pr {
	case ProtUnprotected:
		return Unprotected
	case ProtVerity:
		return Verity
	case ProtSigned:
		return Signed
	case ProtEncrypted:
		return Encrypted
	}
	return Absent
}

func (pr Protection) String() string { return pr.flag().Format() }

// Found describes a partition as the image reader saw it. FSType, if set,
// is checked against filesystem qualifiers in the policy.
type Found struct {
	Protection Protection
	FSType     string // "squashfs", "erofs", "ext4", …; "" = not checked
}

// Action is what to do with a partition.
type Action int

// Use mounts it, Skip leaves it unused (the policy says so), Refuse fails the image.
const (
	Use Action = iota
	Skip
	Refuse
)

// Decision is the outcome for one partition; Reason is one line for the user when Action is Refuse (or Skip).
type Decision struct {
	Action Action
	Reason string
}

// Decide applies the policy to one designator as dissect-image does: an
// absent partition is fine only if the policy allows "absent"; a present one
// is refused if the policy says only "absent", skipped if it says only
// "unused" (with or without absent), and otherwise must be protected in one of
// the ways the policy lists (and have a listed filesystem, if any are).
func Decide(p Policy, d Designator, found Found) Decision {
	want := p.Effective(d)
	use := want & useMask
	if found.Protection == ProtAbsent {
		if want&Absent == 0 {
			return Decision{Refuse, fmt.Sprintf("%s partition is absent, but the image policy asks for %s", d, want.Format())}
		}
		return Decision{Action: Use}
	}
	if use == Absent {
		return Decision{Refuse, fmt.Sprintf("%s partition exists, but the image policy %s requires it to be absent", d, want.Format())}
	}
	if use&^Absent == Unused {
		return Decision{Skip, fmt.Sprintf("%s partition exists, and the image policy says to leave it unused", d)}
	}
	if found.Protection.flag()&want == 0 {
		return Decision{Refuse, fmt.Sprintf("%s partition found with flags '%s', but the image policy asks for '%s'", d, found.Protection, want.Format())}
	}
	if fs := want & fsMask; fs != 0 && found.FSType != "" {
		ff, ok := flagByName(found.FSType)
		if !ok || ff&fsMask == 0 || ff&fs == 0 {
			return Decision{Refuse, fmt.Sprintf("%s partition has file system %s, but the image policy allows only %s", d, found.FSType, fs.Format())}
		}
	}
	return Decision{Action: Use}
}

// RequiresVerity tells whether the policy accepts d only verity-protected
// (verity or signed), so a host without device-mapper must refuse the image
// rather than mount it unverified.
func RequiresVerity(p Policy, d Designator) bool {
	w := p.Effective(d) & (Verity | Signed | Encrypted | Unprotected)
	return w != 0 && w&(Unprotected|Encrypted) == 0
}
