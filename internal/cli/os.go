package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratalinux/strata/internal/ddi"
	"github.com/stratalinux/strata/internal/osimage"
)

// newOSCommand is `strata os`: the OS disk image and its A/B /usr slots. (`os initrd` lives in
// osinitrd.go and joins with one AddCommand line here.)
func newOSCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "os",
		Short: "Bake OS disk images and manage their A/B /usr slots",
		Long: `Bake an OS disk image in Flatcar's layout (EFI-SYSTEM, USR-A, USR-B, OEM, ROOT)
with a dm-verity protected /usr, and install, commit and roll back /usr slots on
it. Every slot command works on the booted disk or on an image file (--disk).`,
	}
	cmd.AddCommand(newOSBakeCommand(env), newOSAddSysextCommand(env), newOSPayloadCommand(env), newOSInspectCommand(env), newOSStatusCommand(env),
		newOSInstallCommand(env), newOSMarkGoodCommand(env), newOSRollbackCommand(env))
	cmd.AddCommand(newOSInitrdCommand(env))
	return cmd
}

func newOSBakeCommand(env *Env) *cobra.Command {
	var req osimage.Request
	var usrMiB, rootMiB, espMiB, oemMiB int64
	var payloadOut, bootloader string
	var sign osSignFlags
	cmd := &cobra.Command{
		Use:   "bake --usr DIR|IMAGE --kernel FILE --output DISK",
		Short: "Build an OS disk image from a /usr tree or image, a kernel and extensions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			if req.Usr == "" {
				return fmt.Errorf("os bake: --usr DIR|IMAGE is required")
			}
			var err error
			if req.Sign, err = sign.signer(); err != nil {
				return fmt.Errorf("os bake: %w", err)
			}
			if payloadOut != "" {
				return writeOSPayload(ctx, env, req, payloadOut)
			}
			if req.Kernel == "" || req.Output == "" {
				return fmt.Errorf("os bake: --kernel FILE and --output DISK are required (or --usr-payload FILE for a payload only)")
			}
			req.Sizes = osimage.Sizes{ESP: espMiB * osimage.MiB, USR: usrMiB * osimage.MiB, OEM: oemMiB * osimage.MiB, Root: rootMiB * osimage.MiB}
			req.Bootloader = osimage.ChooseBootloader(bootloader, req.Arch, req.Initrd != "")
			if err := osimage.Bake(ctx, req); err != nil {
				return err
			}
			boot := "no EFI boot loader: boot /strata/vmlinuz and /strata/initrd directly"
			if req.Bootloader != "" {
				boot = "UEFI: systemd-boot from " + req.Bootloader
			}
			fmt.Fprintf(env.Stdout, "baked %s (slot A: %s; %s)\n", req.Output, req.Version, boot)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Usr, "usr", "", "the /usr tree (built as erofs) or an erofs/squashfs image")
	f.StringVar(&req.Kernel, "kernel", "", "kernel image, copied to EFI-SYSTEM /strata/vmlinuz")
	f.StringVar(&req.Initrd, "initrd", "", "initrd, copied to EFI-SYSTEM /strata/initrd")
	f.StringVar(&req.Version, "version", "0.0.0", "version of slot A's /usr")
	f.StringVar(&req.Arch, "arch", "x86-64", "architecture recorded in the slot")
	f.StringSliceVar(&req.Sysext, "sysext", nil, "extension image for ROOT (repeatable): NAME:FILE as bake_flatcar_image.sh (FILE in /opt/extensions/, link /etc/extensions/NAME.raw, NAME.conf beside FILE to /etc/sysupdate.NAME.d/), or FILE alone in /var/lib/extensions/")
	f.Int64Var(&usrMiB, "usr-size", 0, "size of each /usr slot in MiB (default 256)")
	f.Int64Var(&rootMiB, "root-size", 0, "size of ROOT in MiB (default 128)")
	f.Int64Var(&espMiB, "esp-size", 0, "size of EFI-SYSTEM in MiB (default 64)")
	f.Int64Var(&oemMiB, "oem-size", 0, "size of OEM in MiB (default 16)")
	f.Int64Var(&req.Epoch, "epoch", 0, "timestamp of every file in the images (SOURCE_DATE_EPOCH)")
	f.StringVar(&req.Output, "output", "", "the disk image to write")
	f.StringVar(&payloadOut, "usr-payload", "", "write only the /usr slot payload (for os install) to this file")
	sign.bind(cmd, "slot A's")
	f.StringVar(&bootloader, "bootloader", "auto", "systemd-boot EFI binary for EFI-SYSTEM (with a loader entry for the kernel and --initrd), so UEFI firmware boots the disk: a FILE, none, or auto (systemd-boot from /usr/lib/systemd/boot/efi when there and --initrd is given)")
	f.StringVar(&req.Cmdline, "cmdline", "console=tty0 console=ttyS0,115200n8", "kernel command line options added to the loader entry's (root=LABEL=ROOT mount.usrflags=ro)")
	return cmd
}

// osSignFlags are --sign-key and --sign-cert of os bake and os payload.
type osSignFlags struct{ key, cert string }

func (s *osSignFlags) bind(cmd *cobra.Command, whose string) {
	cmd.Flags().StringVar(&s.key, "sign-key", "", "sign "+whose+" verity root hash with this PEM private key (initrds built with os initrd --trust then require it)")
	cmd.Flags().StringVar(&s.cert, "sign-cert", "", "the PEM certificate of --sign-key, embedded in the signature")
}

func (s *osSignFlags) signer() (*osimage.Signer, error) {
	key, cert, err := loadSigner(s.key, s.cert)
	if err != nil || key == nil {
		return nil, err
	}
	return &osimage.Signer{Key: key, Cert: cert}, nil
}

func newOSAddSysextCommand(env *Env) *cobra.Command {
	var epoch int64
	cmd := &cobra.Command{
		Use:   "add-sysext DISK [NAME:]IMAGE...",
		Short: "Add extension images to ROOT of an existing OS disk image (merged on the next boot)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := osimage.AddExtensions(cmdContext(cmd), args[0], args[1:], epoch); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "added %d extension(s) to %s\n", len(args)-1, args[0])
			return nil
		},
	}
	cmd.Flags().Int64Var(&epoch, "epoch", 0, "timestamp of every file in the rebuilt ROOT")
	return cmd
}

func newOSPayloadCommand(env *Env) *cobra.Command {
	var req osimage.Request
	var sign osSignFlags
	cmd := &cobra.Command{
		Use:   "payload --usr DIR|IMAGE --version V OUTPUT",
		Short: "Write a /usr slot payload (fs image + verity tree + record) for os install",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Usr == "" {
				return fmt.Errorf("os payload: --usr DIR|IMAGE is required")
			}
			var err error
			if req.Sign, err = sign.signer(); err != nil {
				return fmt.Errorf("os payload: %w", err)
			}
			return writeOSPayload(cmdContext(cmd), env, req, args[0])
		},
	}
	cmd.Flags().StringVar(&req.Usr, "usr", "", "the /usr tree (built as erofs) or an erofs/squashfs image")
	cmd.Flags().StringVar(&req.Version, "version", "0.0.0", "version recorded in the payload")
	cmd.Flags().StringVar(&req.Arch, "arch", "x86-64", "architecture recorded in the payload")
	cmd.Flags().Int64Var(&req.Epoch, "epoch", 0, "timestamp of every file when building from a tree")
	sign.bind(cmd, "the payload's")
	return cmd
}

func writeOSPayload(ctx context.Context, env *Env, req osimage.Request, out string) error {
	rec, err := osimage.BuildPayload(ctx, req, out)
	if err != nil {
		return err
	}
	signed := ""
	if rec.Signature != "" {
		signed = ", signed by " + osimage.SignerName(rec)
	}
	fmt.Fprintf(env.Stdout, "wrote %s (%s %s, %d bytes, sha256 of body %s, verity root %s%s)\n", out, rec.FS, rec.Version, rec.PayloadSize(), rec.SHA256, rec.RootHash, signed)
	return nil
}

// osDiskFlags are --disk and --booted of the slot commands.
type osDiskFlags struct {
	disk, booted string
}

func (d *osDiskFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.disk, "disk", "", "work on this disk image file instead of the booted disk")
	cmd.Flags().StringVar(&d.booted, "booted", "", "with --disk: the slot taken as booted, A or B (default: the one the boot loader would pick)")
}

func (d *osDiskFlags) open(write bool) (*osimage.OpenedDisk, error) {
	return osimage.OpenDisk(osimage.DiskOptions{Path: d.disk, Booted: d.booted, Write: write})
}

func printOSSlots(w io.Writer, slots []osimage.SlotInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SLOT\tPART\tVERSION\tPRIORITY\tTRIES\tSUCCESSFUL\tROOT HASH")
	for _, s := range slots {
		version, root := "-", "-"
		if s.Record != nil {
			version, root = s.Record.Version, s.Record.RootHash
		} else if s.RecordErr != "" {
			version = "(bad record)"
		}
		ok := "no"
		if s.Successful {
			ok = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\n", s.Name, s.Index, version, s.Priority, s.Tries, ok, root)
	}
	tw.Flush()
	for _, s := range slots {
		if s.Signer != "" {
			fmt.Fprintf(w, "slot %s: root hash signed by %s\n", s.Name, s.Signer)
		}
		if s.RecordErr != "" {
			fmt.Fprintf(w, "slot %s: %s\n", s.Name, s.RecordErr)
		}
	}
}

func newOSInspectCommand(env *Env) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "inspect DISK",
		Short: "Print an OS disk's layout, each slot's version, attributes and verity root hash",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("os inspect: %w", err)
			}
			defer f.Close()
			size, err := f.Seek(0, io.SeekEnd)
			if err != nil {
				return err
			}
			rep, err := osimage.Report(f, args[0], size, true)
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(env.Stdout, "pretty", rep)
			}
			fmt.Fprintf(env.Stdout, "disk %s, %d MiB, GUID %s\n", filepath.Base(args[0]), size>>20, rep.DiskGUID)
			if rep.FromBackup {
				fmt.Fprintln(env.Stdout, "primary GPT damaged, read from the backup")
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tNAME\tTYPE\tPARTUUID\tSTART\tSIZE\tATTRIBUTES")
			for _, p := range rep.Partitions {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\n", p.Index, p.Name, p.Type, p.UUID, p.Start, p.Size, p.Attributes)
			}
			tw.Flush()
			fmt.Fprintln(env.Stdout)
			printOSSlots(env.Stdout, rep.Slots)
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}

func newOSStatusCommand(env *Env) *cobra.Command {
	var d osDiskFlags
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the booted slot and both slots' versions and priority/tries/successful",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			disk, err := d.open(false)
			if err != nil {
				return err
			}
			defer disk.Close()
			rep, err := osimage.Report(disk.File, disk.Path, disk.Size, false)
			if err != nil {
				return err
			}
			rep.Booted = disk.Booted
			if jsonOut {
				return writeJSON(env.Stdout, "pretty", rep)
			}
			if rep.FromBackup {
				fmt.Fprintln(env.Stdout, "primary GPT damaged, read from the backup (os install, mark-good and rollback write both copies)")
			}
			fmt.Fprintf(env.Stdout, "booted: %s\nnext:   %s\n\n", rep.Booted, orDash(rep.Next))
			printOSSlots(env.Stdout, rep.Slots)
			return nil
		},
	}
	d.bind(cmd)
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the status as JSON")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newOSInstallCommand(env *Env) *cobra.Command {
	var d osDiskFlags
	var sum, arch, root string
	var requireSigned bool
	cmd := &cobra.Command{
		Use:   "install PAYLOAD",
		Short: "Write a /usr payload to the inactive slot, verify it, then arm it for the next boot",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("os install: %w", err)
			}
			defer p.Close()
			psize, err := p.Seek(0, io.SeekEnd)
			if err != nil {
				return err
			}
			certs, skipped, err := ddi.TrustedCertificates(root)
			if err != nil {
				return fmt.Errorf("os install: trusted certificates: %w", err)
			}
			for _, s := range skipped {
				fmt.Fprintf(env.Stderr, "os install: skipped certificate %s\n", s)
			}
			disk, err := d.open(true)
			if err != nil {
				return err
			}
			defer disk.Close()
			res, err := osimage.Install(cmdContext(cmd), disk.File, disk.Size, p, psize, osimage.InstallOptions{Booted: disk.Booted, Arch: arch, SHA256: sum,
				Trusted: ddi.Certs(certs), RequireSigned: requireSigned})
			if err != nil {
				return fmt.Errorf("os install %s: %w", args[0], err)
			}
			signed := ""
			if res.Signer != "" {
				signed = ", signed by " + res.Signer
			}
			fmt.Fprintf(env.Stdout, "installed %s into slot %s (booted: %s%s); slot %s boots next, once\n", res.Record.Version, res.Target, res.Booted, signed, res.Target)
			return nil
		},
	}
	d.bind(cmd)
	cmd.Flags().StringVar(&sum, "sha256", "", "expected SHA-256 (hex) of the payload file")
	cmd.Flags().StringVar(&arch, "arch", "x86-64", "refuse payloads for another architecture (empty: do not check)")
	cmd.Flags().StringVar(&root, "root", "", "look up trusted certificates in ROOT/{etc,run,usr/local/lib,usr/lib}/verity.d")
	cmd.Flags().BoolVar(&requireSigned, "require-signed", false, "refuse a payload whose root hash is not signed by a trusted certificate (implied when the booted slot is signed)")
	return cmd
}

func newOSMarkGoodCommand(env *Env) *cobra.Command {
	var d osDiskFlags
	var checks, units []string
	cmd := &cobra.Command{
		Use:   "mark-good",
		Short: "After the health checks pass, mark the booted slot successful",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cs []osimage.Check
			for _, c := range checks {
				cs = append(cs, osimage.CommandCheck(c))
			}
			for _, u := range units {
				cs = append(cs, osimage.UnitCheck(u))
			}
			disk, err := d.open(true)
			if err != nil {
				return err
			}
			defer disk.Close()
			if err := osimage.RunChecks(cmdContext(cmd), cs); err != nil {
				return fmt.Errorf("os mark-good: slot %s stays unmarked: %w", disk.Booted, err)
			}
			if err := osimage.MarkGood(disk.File, disk.Size, disk.Booted); err != nil {
				return fmt.Errorf("os mark-good: %w", err)
			}
			fmt.Fprintf(env.Stdout, "slot %s marked good\n", disk.Booted)
			return nil
		},
	}
	d.bind(cmd)
	cmd.Flags().StringArrayVar(&checks, "check", nil, "health check command line that must exit 0 (repeatable)")
	cmd.Flags().StringArrayVar(&units, "unit", nil, "systemd unit that must be active (repeatable)")
	return cmd
}

func newOSRollbackCommand(env *Env) *cobra.Command {
	var d osDiskFlags
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Make the other, known-good slot boot next",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			disk, err := d.open(true)
			if err != nil {
				return err
			}
			defer disk.Close()
			other, err := osimage.Rollback(disk.File, disk.Size, disk.Booted)
			if err != nil {
				return fmt.Errorf("os rollback: %w", err)
			}
			fmt.Fprintf(env.Stdout, "slot %s boots next (was booted: %s)\n", other, disk.Booted)
			return nil
		},
	}
	d.bind(cmd)
	return cmd
}
