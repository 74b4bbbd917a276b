package cli

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/pgpsign"
	"github.com/stratalinux/strata/internal/provision"
	"github.com/stratalinux/strata/internal/sdparse"
)

func newProvisionCommand(env *Env) *cobra.Command {
	var repoURL, variant, ver, keyring, arch, activate, updater string
	var ignition, noop bool
	var instancesMax int
	cmd := &cobra.Command{
		Use:   "provision --repo URL EXT[@VERSION]...",
		Short: "Print a Butane (or Ignition) config that installs and updates extensions",
		Long: `Print a Butane config (variant flatcar, versions 1.0.0 and 1.1.0; or fcos)
that downloads each extension's image with verification.hash into
/opt/extensions/NAME, links /etc/extensions/NAME.raw, installs the
sysupdate transfer definition under /etc/sysupdate.NAME.d/, enables
systemd-sysupdate.timer and adds a drop-in that updates the extension and
then refreshes the merge (--activate=refresh) or flags a reboot
(--activate=reboot). With --ignition, print the Ignition JSON instead.

With --keyring the repository's signature is checked now, the key is
installed on the node and the transfers keep Verify=yes.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repoURL == "" {
				return errors.New("--repo URL is required")
			}
			if ver == "" {
				ver = provision.DefaultVersion(variant)
			}
			ro := provision.ResolveOptions{RepoURL: repoURL, Arch: arch, InstancesMax: instancesMax, Client: &download.Client{}}
			if keyring != "" {
				k, err := readSmall(keyring, pgpsign.MaxKeySize)
				if err != nil {
					return err
				}
				ro.Keyring = k
			} else {
				env.Log.Warn("no --keyring: the repository's signature is not checked and the transfers get Verify=no")
			}
			exts, err := provision.Resolve(cmdContext(cmd), ro, args)
			if err != nil {
				return err
			}
			out, err := provision.Butane(provision.Options{
				Variant: variant, Version: ver, RepoURL: repoURL, Exts: exts, Keyring: ro.Keyring,
				Activation: provision.Activation(activate), Updater: updater, Noop: noop,
			})
			if err != nil {
				return err
			}
			if ignition {
				if out, err = provision.Ignition(out, true); err != nil {
					return err
				}
			}
			_, err = env.Stdout.Write(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&repoURL, "repo", "", "repository base URL")
	f.StringVar(&variant, "variant", "flatcar", "Butane variant: flatcar or fcos")
	f.StringVar(&ver, "butane-version", "", "Butane spec version (flatcar: 1.0.0, 1.1.0; fcos: 1.4.0–1.6.0)")
	f.BoolVar(&ignition, "ignition", false, "print Ignition JSON instead of Butane")
	f.StringVar(&keyring, "keyring", "", "the repository's public key: verify now and install on the node")
	f.StringVar(&arch, "arch", sdparse.NativeArchitecture(), "architecture of the nodes (x86-64, arm64, …)")
	f.StringVar(&activate, "activate", "refresh", "after an update: refresh (systemd-sysext refresh) or reboot (touch /run/reboot-required)")
	f.StringVar(&updater, "updater", "/usr/lib/systemd/systemd-sysupdate", "sysupdate binary on the node (e.g. /usr/bin/strata sysupdate)")
	f.BoolVar(&noop, "noop", false, "add /etc/sysupdate.d/noop.transfer (Flatcar releases without one)")
	f.IntVar(&instancesMax, "instances-max", 3, "InstancesMax= of the transfers")
	return cmd
}
