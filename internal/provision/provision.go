// Package provision writes the first-boot configuration that installs
// extensions from a Strata repository and keeps them updated: a Butane
// config (variant flatcar or fcos) and, translated by the coreos butane
// packages, the Ignition JSON. Each extension gets its image downloaded
// with verification.hash, the /etc/extensions/NAME.raw link, its
// sysupdate transfer definition, and a systemd-sysupdate.service drop-in
// that updates it and then refreshes the merge (or flags a reboot).
package provision

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/coreos/butane/config/common"
	fcos1_4 "github.com/coreos/butane/config/fcos/v1_4"
	fcos1_5 "github.com/coreos/butane/config/fcos/v1_5"
	fcos1_6 "github.com/coreos/butane/config/fcos/v1_6"
	flatcar1_0 "github.com/coreos/butane/config/flatcar/v1_0"
	flatcar1_1 "github.com/coreos/butane/config/flatcar/v1_1"
	"github.com/coreos/go-semver/semver"
	"github.com/coreos/vcontext/report"
	"go.yaml.in/yaml/v3"

	"github.com/stratalinux/strata/internal/release"
	"github.com/stratalinux/strata/internal/repo"
)

// Extension is one extension to provision, resolved against the
// repository.
type Extension struct {
	Name    string
	Version string
	File    string // image file name in the repository
	SHA256  string
	// Transfer is the sysupdate transfer definition to install.
	Transfer []byte
}

// Activation says what happens after an update installed a new version.
type Activation string

// Activation policies.
const (
	// Refresh runs "systemd-sysext refresh" (gap-free with Strata).
	Refresh Activation = "refresh"
	// Reboot touches /run/reboot-required for a reboot manager (kured,
	// FLUO).
	Reboot Activation = "reboot"
)

// Options describe the config to write.
type Options struct {
	Variant string // "flatcar" or "fcos"
	Version string // Butane spec version, e.g. 1.0.0
	RepoURL string
	Exts    []Extension
	// Keyring is the repository's public key, installed as
	// /etc/systemd/import-pubring.pgp (needed for Verify=yes).
	Keyring    []byte
	Activation Activation
	// Updater is the sysupdate binary the drop-in runs.
	Updater string
	// Refresher is the command that activates a new version.
	Refresher string
	// Noop adds /etc/sysupdate.d/noop.transfer so that the unit's own
	// "systemd-sysupdate update" finds a definition (older Flatcar).
	Noop bool
}

// SupportedVersions lists the Butane spec versions per variant.
var SupportedVersions = map[string][]string{
	"flatcar": {"1.0.0", "1.1.0"},
	"fcos":    {"1.4.0", "1.5.0", "1.6.0"},
}

// DefaultVersion is the spec version used when none is given.
func DefaultVersion(variant string) string {
	if variant == "fcos" {
		return "1.5.0"
	}
	return "1.0.0"
}

type octal int

func (o octal) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprintf("0%o", int(o))}, nil
}

type config struct {
	Variant string   `yaml:"variant"`
	Version string   `yaml:"version"`
	Storage storage  `yaml:"storage"`
	Systemd systemdT `yaml:"systemd"`
}

type storage struct {
	Directories []dirT  `yaml:"directories,omitempty"`
	Files       []fileT `yaml:"files"`
	Links       []linkT `yaml:"links"`
}

type dirT struct {
	Path string `yaml:"path"`
	Mode octal  `yaml:"mode"`
}

type fileT struct {
	Path     string    `yaml:"path"`
	Mode     octal     `yaml:"mode"`
	Contents contentsT `yaml:"contents"`
}

type contentsT struct {
	Source       string         `yaml:"source,omitempty"`
	Inline       string         `yaml:"inline,omitempty"`
	Verification *verificationT `yaml:"verification,omitempty"`
}

type verificationT struct {
	Hash string `yaml:"hash"`
}

type linkT struct {
	Path   string `yaml:"path"`
	Target string `yaml:"target"`
	Hard   bool   `yaml:"hard"`
}

type systemdT struct {
	Units []unitT `yaml:"units"`
}

type unitT struct {
	Name    string    `yaml:"name"`
	Enabled *bool     `yaml:"enabled,omitempty"`
	Dropins []dropinT `yaml:"dropins,omitempty"`
}

type dropinT struct {
	Name     string `yaml:"name"`
	Contents string `yaml:"contents"`
}

// noopTransfer matches nothing; it only keeps the unit's main
// "systemd-sysupdate update" from failing for lack of definitions.
const noopTransfer = `# Matches nothing: lets systemd-sysupdate.service's own "update" succeed.
[Source]
Type=regular-file
Path=/
MatchPattern=invalid@v.raw

[Target]
Type=regular-file
Path=/
`

func (o Options) check() error {
	vs, ok := SupportedVersions[o.Variant]
	if !ok {
		return fmt.Errorf("variant %q is not supported (flatcar or fcos)", o.Variant)
	}
	found := false
	for _, v := range vs {
		found = found || v == o.Version
	}
	if !found {
		return fmt.Errorf("butane version %s is not supported for variant %s (supported: %s)", o.Version, o.Variant, strings.Join(vs, ", "))
	}
	if len(o.Exts) == 0 {
		return fmt.Errorf("no extensions to provision")
	}
	switch o.Activation {
	case Refresh, Reboot:
	default:
		return fmt.Errorf("activation %q is not supported (refresh or reboot)", o.Activation)
	}
	for _, e := range o.Exts {
		if err := release.ValidName(e.Name); err != nil {
			return err
		}
		if len(e.SHA256) != 64 {
			return fmt.Errorf("extension %s: no SHA256 for %s", e.Name, e.File)
		}
	}
	return nil
}

// Butane renders the Butane config.
func Butane(o Options) ([]byte, error) {
	if o.Updater == "" {
		o.Updater = "/usr/lib/systemd/systemd-sysupdate"
	}
	if o.Refresher == "" {
		o.Refresher = "/usr/bin/systemd-sysext refresh"
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	c := config{Variant: o.Variant, Version: o.Version}
	yes := true
	update := unitT{Name: "systemd-sysupdate.service"}
	for _, e := range o.Exts {
		l := repo.NodeLayout(e.Name)
		target := l.TargetDir + "/" + e.File
		c.Storage.Files = append(c.Storage.Files,
			fileT{Path: target, Mode: 0o644, Contents: contentsT{
				Source:       strings.TrimRight(o.RepoURL, "/") + "/" + e.File,
				Verification: &verificationT{Hash: "sha256-" + e.SHA256},
			}},
			fileT{Path: l.TransferPath, Mode: 0o644, Contents: contentsT{Inline: string(e.Transfer)}},
		)
		c.Storage.Links = append(c.Storage.Links, linkT{Path: l.Link, Target: target, Hard: false})
		update.Dropins = append(update.Dropins, dropinT{Name: e.Name + ".conf", Contents: dropin(o, e.Name)})
	}
	if len(o.Keyring) > 0 {
		c.Storage.Files = append(c.Storage.Files, fileT{Path: "/etc/systemd/import-pubring.pgp", Mode: 0o644, Contents: contentsT{Inline: string(o.Keyring)}})
	}
	if o.Noop {
		c.Storage.Files = append(c.Storage.Files, fileT{Path: "/etc/sysupdate.d/noop.transfer", Mode: 0o644, Contents: contentsT{Inline: noopTransfer}})
	}
	c.Systemd.Units = []unitT{{Name: "systemd-sysupdate.timer", Enabled: &yes}, update}
	var buf bytes.Buffer
	buf.WriteString("# Written by strata provision: installs and updates extensions from\n# " + o.RepoURL + "\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dropin is the systemd-sysupdate.service drop-in for one extension:
// remember where the link points, update the component, and activate when
// the link moved.
func dropin(o Options, name string) string {
	before := "/run/strata-sysupdate-" + name + ".before"
	after := "/run/strata-sysupdate-" + name + ".after"
	link := repo.NodeLayout(name).Link
	act := o.Refresher
	if o.Activation == Reboot {
		act = "touch /run/reboot-required"
	}
	var b strings.Builder
	b.WriteString("[Service]\n")
	fmt.Fprintf(&b, "ExecStartPre=/usr/bin/sh -c \"readlink --canonicalize %s > %s\"\n", link, before)
	fmt.Fprintf(&b, "ExecStartPre=%s -C %s update\n", o.Updater, name)
	fmt.Fprintf(&b, "ExecStartPost=/usr/bin/sh -c \"readlink --canonicalize %s > %s\"\n", link, after)
	fmt.Fprintf(&b, "ExecStartPost=/usr/bin/sh -c \"if ! cmp --silent %s %s; then %s; fi\"\n", before, after, act)
	return b.String()
}

// translateFunc is the signature of a butane variant package's
// ToIgn*Bytes.
type translateFunc func([]byte, common.TranslateBytesOptions) ([]byte, report.Report, error)

// translator returns the translator of one Butane variant and spec
// version (those in SupportedVersions). Each variant version is imported
// on its own rather than through github.com/coreos/butane/config: that
// package links every variant (openshift, r4e, fiot, experimental specs)
// and their initialisers cost every strata invocation, even
// "strata --version", over a millisecond of start-up (docs/startup.md).
func translator(variant string, v semver.Version) translateFunc {
	switch variant + "+" + v.String() {
	case "flatcar+1.0.0":
		return flatcar1_0.ToIgn3_3Bytes
	case "flatcar+1.1.0":
		return flatcar1_1.ToIgn3_4Bytes
	case "fcos+1.4.0":
		return fcos1_4.ToIgn3_3Bytes
	case "fcos+1.5.0":
		return fcos1_5.ToIgn3_4Bytes
	case "fcos+1.6.0":
		return fcos1_6.ToIgn3_5Bytes
	}
	return nil
}

// supportedList names the supported variants and versions for messages.
func supportedList() string {
	var parts []string
	for _, variant := range []string{"flatcar", "fcos"} {
		parts = append(parts, variant+" "+strings.Join(SupportedVersions[variant], ", "))
	}
	return strings.Join(parts, "; ")
}

// translateBytes picks the translator from the config's variant and
// version fields, as butane's config.TranslateBytes does, among the
// variants Strata links.
func translateBytes(input []byte, opts common.TranslateBytesOptions) ([]byte, report.Report, error) {
	var head struct {
		Variant string `yaml:"variant"`
		Version string `yaml:"version"`
	}
	if err := yaml.Unmarshal(input, &head); err != nil {
		return nil, report.Report{}, common.ErrUnmarshal{Detail: err.Error()}
	}
	if head.Variant == "" {
		return nil, report.Report{}, common.ErrNoVariant
	}
	v, err := semver.NewVersion(head.Version)
	if err != nil {
		return nil, report.Report{}, common.ErrInvalidVersion
	}
	t := translator(head.Variant, *v)
	if t == nil {
		return nil, report.Report{}, fmt.Errorf("%w; Strata translates %s (use the butane tool for other variants)",
			common.ErrUnknownVersion{Variant: head.Variant, Version: *v}, supportedList())
	}
	return t(input, opts)
}

// Ignition translates a Butane config into Ignition JSON with the coreos
// butane packages (strict: any warning is an error). Only the variants and
// versions in SupportedVersions are translated.
func Ignition(butaneConfig []byte, pretty bool) ([]byte, error) {
	out, rep, err := translateBytes(butaneConfig, common.TranslateBytesOptions{Pretty: pretty})
	if err != nil {
		if len(rep.Entries) == 0 {
			return nil, fmt.Errorf("butane: %w", err)
		}
		return nil, fmt.Errorf("butane: %w: %s", err, rep.String())
	}
	if len(rep.Entries) > 0 {
		return nil, fmt.Errorf("butane: %s", rep.String())
	}
	if pretty && len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out, nil
}
