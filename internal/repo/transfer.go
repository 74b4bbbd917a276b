package repo

import (
	"fmt"
	"strings"
)

// TransferSpec describes the sysupdate transfer definition of one
// extension (or one minor-version stream of it).
type TransferSpec struct {
	// Name is the extension: target /opt/extensions/NAME, symlink
	// /etc/extensions/NAME.raw.
	Name string
	// Line, when set (e.g. "v1.30"), restricts updates to that minor
	// line: MatchPattern=NAME-LINE.@v-%a.raw.
	Line string
	// URL is the repository's base URL (Path= of the source).
	URL          string
	InstancesMax int
	// Verify is false only for unsigned repositories.
	Verify bool
}

// ID is the transfer's file name without suffix: NAME or NAME-LINE.
func (s TransferSpec) ID() string {
	if s.Line == "" {
		return s.Name
	}
	return s.Name + "-" + s.Line
}

// escapePattern makes literal text safe inside a MatchPattern= value:
// '@' and '%' are doubled.
func escapePattern(s string) string {
	return strings.NewReplacer("@", "@@", "%", "%%").Replace(s)
}

// Pattern returns the MatchPattern= of the spec.
func (s TransferSpec) Pattern() string {
	if s.Line == "" {
		return escapePattern(s.Name) + "-@v-%a.raw"
	}
	return escapePattern(s.Name+"-"+s.Line) + ".@v-%a.raw"
}

// TransferFile renders the definition in systemd's sysupdate.d format,
// with the keys the sysext-bakery uses.
func TransferFile(s TransferSpec) []byte {
	max := s.InstancesMax
	if max == 0 {
		max = 3
	}
	verify := "no"
	if s.Verify {
		verify = "yes"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: written by strata publish; systemd-sysupdate and strata sysupdate read it.\n", s.ID())
	if s.Line != "" {
		fmt.Fprintf(&b, "# Stays on the %s line of %s.\n", s.Line, s.Name)
	}
	fmt.Fprintf(&b, "[Transfer]\nVerify=%s\n\n", verify)
	fmt.Fprintf(&b, "[Source]\nType=url-file\nPath=%s\nMatchPattern=%s\n\n", s.URL, s.Pattern())
	l := NodeLayout(s.Name)
	fmt.Fprintf(&b, "[Target]\nType=regular-file\nPath=%s\nMatchPattern=%s\nCurrentSymlink=%s\nInstancesMax=%d\n",
		l.TargetDir, s.Pattern(), l.Link, max)
	return []byte(b.String())
}

// Layout is where an extension installed from a repository lives on a
// node: its transfer definition, the directory its versions are kept in
// and the link the merge follows. One place spells these paths for ext
// add/remove, publish's transfer files and provisioning.
type Layout struct {
	Name         string
	TransferPath string // /etc/sysupdate.NAME.d/NAME.transfer
	TargetDir    string // /opt/extensions/NAME
	Link         string // /etc/extensions/NAME.raw
}

// NodeLayout returns the layout of extension name.
func NodeLayout(name string) Layout {
	return Layout{
		Name:         name,
		TransferPath: "/etc/sysupdate." + name + ".d/" + name + ".transfer",
		TargetDir:    "/opt/extensions/" + name,
		Link:         "/etc/extensions/" + name + ".raw",
	}
}
